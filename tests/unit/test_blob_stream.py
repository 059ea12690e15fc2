"""The blob trigger's stream: a real func.InputStream that reads the file in chunks."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tracemalloc
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.blob.store import BlobFile
from devhost.blob.stream import (
    BlobChangedError,
    BlobDecodeError,
    BlobStream,
    local_uri,
    open_blob,
    read_content,
    wants_content,
)

pytestmark = pytest.mark.unit

BUFFER = 64 * 1024


class RecordingFile(io.FileIO):
    """A raw file that remembers the size of every read the OS was asked for."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self.reads: list[int] = []

    def readinto(self, buffer: Any) -> int:
        self.reads.append(len(memoryview(buffer)))
        return super().readinto(buffer)

    def readall(self) -> bytes:
        self.reads.append(-1)
        return super().readall()


def blob_file(path: Path, container: str = "landing") -> BlobFile:
    stat = path.stat()
    return BlobFile(container, path.name, path, stat.st_size, stat.st_mtime_ns)


def stream_over(path: Path) -> tuple[BlobStream, RecordingFile]:
    raw = RecordingFile(path)
    stream = BlobStream(
        io.BufferedReader(raw, buffer_size=BUFFER),
        name=f"landing/{path.name}",
        length=path.stat().st_size,
        uri=local_uri(path),
    )
    return stream, raw


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(1024 * 1024) * 8)  # 8 MiB
    return path


def write_csv(path: Path, rows: int) -> list[list[str]]:
    expected = [["id", "city", "note"]]
    expected += [[str(i), "Zürich" if i % 2 else "Łódź", "x" * 900] for i in range(rows)]
    expected.append(["last", "multi\nline", 'quoted "note"'])
    with open(path, "w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows(expected)
    return expected


def test_it_is_an_input_stream_with_azure_attributes(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"a,b\n1,2\n")
    with open_blob(blob_file(path), local_uri(path)) as stream:
        assert isinstance(stream, func.InputStream)
        assert isinstance(stream, func.blob.InputStream)  # what the worker gives in Azure
        assert stream.name == "landing/a.csv"
        assert stream.length == 8
        assert stream.uri.startswith("file:///") and stream.uri.endswith("/a.csv")
        assert stream.blob_properties["ContentLength"] == 8
        assert stream.blob_properties["ContentType"] == "text/csv"
        assert stream.blob_properties["ETag"] == blob_file(path).etag
        assert stream.metadata == {}
        assert stream.readable() and not stream.seekable() and not stream.writable()
        assert stream.read() == b"a,b\n1,2\n"


def test_reading_in_chunks_never_reads_the_whole_file(big_file: Path) -> None:
    stream, raw = stream_over(big_file)
    with stream:
        first = stream.read(1024)
        assert len(first) == 1024
        assert raw.tell() <= BUFFER  # the OS was asked for one buffer, not 8 MiB
        sha = hashlib.sha256(first)
        for chunk in iter(lambda: stream.read(4096), b""):
            sha.update(chunk)
    assert sha.hexdigest() == hashlib.sha256(big_file.read_bytes()).hexdigest()
    assert raw.reads and -1 not in raw.reads
    assert max(raw.reads) <= BUFFER
    assert len(raw.reads) >= big_file.stat().st_size // BUFFER


def test_csv_over_a_text_wrapper_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    expected = write_csv(path, rows=8000)  # about 7 MiB
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with open_blob(blob_file(path), local_uri(path)) as stream:
            count, last = 0, None
            for row in csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline="")):
                count, last = count + 1, row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(expected) and last == expected[-1]
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte file"


def test_text_wrapper_decodes_utf8_split_across_chunks(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    expected = write_csv(path, rows=200)
    stream, _ = stream_over(path)
    with io.TextIOWrapper(stream, encoding="utf-8", newline="") as text:
        assert list(csv.reader(text)) == expected
    assert stream.closed  # closing the wrapper closes the blob stream


def test_iteration_yields_lines(tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_bytes(b"one\ntwo\r\nthree")
    stream, _ = stream_over(path)
    with stream:
        assert list(stream) == [b"one\n", b"two\r\n", b"three"]


def test_read1_readinto_and_readline(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"header\n" + bytes(range(256)))
    stream, _ = stream_over(path)
    with stream:
        assert stream.readline() == b"header\n"
        buffer = bytearray(100)
        assert stream.readinto(buffer) == 100 and bytes(buffer) == bytes(range(100))
        assert stream.read1(56) == bytes(range(100, 156))
        assert stream.read(None) == bytes(range(156, 256))
        assert stream.read(10) == b""


def test_a_closed_stream_refuses_reads_and_closes_its_file(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    stream, raw = stream_over(path)
    stream.close()
    assert stream.closed and raw.closed
    with pytest.raises(ValueError, match="closed"):
        stream.read()
    stream.close()  # closing twice is harmless


def test_seeking_is_unsupported_as_in_azure(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    stream, _ = stream_over(path)
    with stream, pytest.raises(io.UnsupportedOperation):
        stream.seek(0)


def test_a_changed_blob_is_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"v1")
    scanned = blob_file(path)
    path.write_bytes(b"version 2")
    with pytest.raises(BlobChangedError, match="changed"):
        open_blob(scanned, local_uri(path))
    path.unlink()
    with pytest.raises(BlobChangedError, match="vanished"):
        open_blob(scanned, local_uri(path))


@pytest.mark.parametrize(
    ("annotation", "kind"),
    [(bytes, bytes), (bytearray, bytes), (str, str), (func.InputStream, None), (None, None)],
)
def test_the_annotation_decides_stream_or_content(annotation: Any, kind: Any) -> None:
    assert wants_content(annotation) is kind


def test_content_for_bytes_and_str_parameters(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("héllo".encode())
    with open_blob(blob_file(path), local_uri(path)) as stream:
        assert read_content(stream, str) == "héllo"
    with open_blob(blob_file(path), local_uri(path)) as stream:
        assert read_content(stream, bytes) == "héllo".encode()


def test_a_str_parameter_on_binary_data_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "b.txt"
    path.write_bytes(b"\xff\xfe")
    with (
        open_blob(blob_file(path), local_uri(path)) as stream,
        pytest.raises(BlobDecodeError, match="not UTF-8.*annotate it as bytes"),
    ):
        read_content(stream, str)
