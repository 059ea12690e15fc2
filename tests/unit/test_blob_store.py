"""The embedded blob store: what a scan sees, versions, safe paths and atomic writes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from devhost.blob.store import BlobPathError, BlobStore, is_ignored_name
from devhost.blob.stream import BlobChangedError, open_blob

pytestmark = pytest.mark.unit


def drop(store: BlobStore, blob: str, data: bytes = b"x", age_s: float = 5.0) -> Path:
    """Create a blob file whose mtime is age_s in the past (settled unless age_s is small)."""
    path = store.root / blob
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def names(store: BlobStore, container: str = "landing") -> list[str]:
    return [blob.name for blob in store.scan(container)]


def test_scan_lists_settled_files_recursively_in_order(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    for blob in ("landing/b.csv", "landing/a.csv", "landing/2024/01/c.csv", "other/x.csv"):
        drop(store, blob)
    assert names(store) == ["2024/01/c.csv", "a.csv", "b.csv"]
    [found] = [b for b in store.scan("landing") if b.name == "a.csv"]
    assert found.blob_path == "landing/a.csv" and found.size == 1


def test_scan_skips_hidden_temporary_and_fresh_files(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    drop(store, "landing/ok.csv")
    drop(store, "landing/.hidden.csv")
    drop(store, "landing/upload.csv.tmp")
    drop(store, "landing/upload.csv.partial")
    drop(store, "landing/.staging/inside.csv")
    drop(store, "landing/fresh.csv", age_s=0.0)  # may still be being written
    assert names(store) == ["ok.csv"]


def test_a_fresh_file_is_seen_once_it_settles(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    drop(store, "landing/fresh.csv", age_s=0.0)
    assert list(store.scan("landing", quiet_period_s=0.5)) == []
    settled = [blob.name for blob in store.scan("landing", quiet_period_s=0.0)]
    assert settled == ["fresh.csv"]


def test_scan_of_a_missing_container_is_empty(tmp_path: Path) -> None:
    assert names(BlobStore(tmp_path), "nothing") == []


def test_directory_links_are_not_followed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    drop(store, "landing/a.csv")
    (tmp_path / "landing" / "loop").symlink_to(tmp_path / "landing", target_is_directory=True)
    assert names(store) == ["a.csv"]


def test_rewriting_a_file_gives_a_new_version(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    path = drop(store, "landing/a.csv", b"one", age_s=10)
    [first] = store.scan("landing")
    path.write_bytes(b"two")
    then = time.time() - 5
    os.utime(path, (then, then))
    [second] = store.scan("landing")
    assert first.size == second.size and first.etag != second.etag


@pytest.mark.parametrize("name", ["../escape.csv", "a/../../b", "a//b", "./a", "a/", "a\0b"])
def test_blob_names_cannot_leave_their_container(tmp_path: Path, name: str) -> None:
    with pytest.raises(BlobPathError, match="segments"):
        BlobStore(tmp_path).path_of("landing", name)


def test_atomic_write_creates_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    target = store.write_atomically("processed", "2024/a.json", b"first")
    assert target == tmp_path / "processed" / "2024" / "a.json"
    assert target.read_bytes() == b"first"
    store.write_atomically("processed", "2024/a.json", b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_a_failed_write_removes_its_temporary(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    (tmp_path / "processed").mkdir()
    (tmp_path / "processed" / "a.json").mkdir()  # a folder where the blob should go
    with pytest.raises(OSError):
        store.write_atomically("processed", "a.json", b"data")
    assert [p.name for p in (tmp_path / "processed").iterdir()] == ["a.json"]


@pytest.mark.parametrize(
    ("name", "ignored"),
    [(".x", True), ("x.tmp", True), ("x.partial", True), ("x.csv", False), ("tmp", False)],
)
def test_ignored_names(name: str, ignored: bool) -> None:
    assert is_ignored_name(name) is ignored


def test_links_that_leave_the_store_are_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = BlobStore(tmp_path / "blobs")
    drop(store, "landing/real.csv", b"inside")
    outside = tmp_path / "secret.csv"
    outside.write_bytes(b"outside the store")
    links = store.root / "landing"
    (links / "out.csv").symlink_to(outside)
    (links / "up.csv").symlink_to(Path("..") / ".." / "secret.csv")
    (links / "dangling.csv").symlink_to(tmp_path / "missing.csv")
    (links / "in.csv").symlink_to(store.root / "landing" / "real.csv")
    (links / "folder").symlink_to(tmp_path, target_is_directory=True)
    with caplog.at_level("WARNING"):
        assert names(store) == ["in.csv", "real.csv"]
        assert names(store) == ["in.csv", "real.csv"]
    refused = [r for r in caplog.records if "not following" in r.getMessage()]
    assert len(refused) == 4  # once per link (the folder one too), not once per scan
    [linked] = [b for b in store.scan("landing") if b.name == "in.csv"]
    assert linked.path == (store.root / "landing" / "real.csv").resolve()
    with open_blob(linked, "file://x") as stream:
        assert stream.read() == b"inside"


def test_a_blob_swapped_for_a_link_after_the_scan_is_not_read(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    path = drop(store, "landing/a.csv", b"data")
    [blob] = store.scan("landing")
    outside = tmp_path / "secret.csv"
    outside.write_bytes(b"data")
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(BlobChangedError):
        open_blob(blob, "file://x")
