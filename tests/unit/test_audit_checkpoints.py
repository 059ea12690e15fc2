"""The checkpoints file: one fsync'd line per closed hour, appended, never rewritten."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embedded.audit.checkpoints import (
    Checkpoint,
    CheckpointFileError,
    append_checkpoint,
    checkpoints_path,
    load_checkpoints,
    parse_checkpoint,
    read_checkpoints,
)
from shared.audit.checkpoints import FileCheckpoints

pytestmark = pytest.mark.unit

TWELVE = Checkpoint("2026-12-07T12", 3, "a" * 64, "2026-12-07T13:00:00.000000Z")
THIRTEEN = Checkpoint("2026-12-07T13", 9, "b" * 64, "2026-12-07T14:00:00.000000Z")


def test_the_file_lives_under_the_data_dir(tmp_path: Path) -> None:
    assert checkpoints_path(tmp_path) == tmp_path / "audit" / "checkpoints.jsonl"
    assert read_checkpoints(checkpoints_path(tmp_path)) == {}


def test_each_partition_is_written_once_and_lines_are_only_appended(tmp_path: Path) -> None:
    store = FileCheckpoints(checkpoints_path(tmp_path))
    assert store.write(TWELVE) is True
    first = store.path.read_bytes()
    assert store.write(Checkpoint("2026-12-07T12", 4, "c" * 64)) is False
    assert store.write(THIRTEEN) is True
    assert store.path.read_bytes().startswith(first)
    assert store.written() == {"2026-12-07T12": TWELVE, "2026-12-07T13": THIRTEEN}
    assert first == (
        b'{"partition":"2026-12-07T12","last_seq":3,"last_hash":"'
        + b"a" * 64
        + b'","written_at":"2026-12-07T13:00:00.000000Z"}\n'
    )


def test_the_first_line_for_a_partition_wins(tmp_path: Path) -> None:
    path = checkpoints_path(tmp_path)
    append_checkpoint(path, TWELVE)
    append_checkpoint(path, Checkpoint("2026-12-07T12", 1, "f" * 64))  # appended afterwards
    assert read_checkpoints(path)["2026-12-07T12"] == TWELVE


def test_a_torn_last_line_is_left_out_and_the_next_line_starts_afresh(tmp_path: Path) -> None:
    path = checkpoints_path(tmp_path)
    append_checkpoint(path, TWELVE)
    with path.open("ab") as file:
        file.write(b'{"partition":"2026-12-07T13","last_')  # a crash in the middle of a write
    assert read_checkpoints(path) == {"2026-12-07T12": TWELVE}
    append_checkpoint(path, THIRTEEN)
    loaded = load_checkpoints(path)  # the torn line is now a line of its own, left out
    assert loaded.checkpoints == {"2026-12-07T12": TWELVE, "2026-12-07T13": THIRTEEN}
    assert [number for number, _ in loaded.unreadable] == [2]
    assert "not JSON" in loaded.unreadable[0][1]
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3 and lines[2].startswith(b'{"partition":"2026-12-07T13"')


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"[1, 2]", "not a JSON object"),
        (
            b'{"partition": "yesterday", "last_seq": 1, "last_hash": "' + b"a" * 64 + b'"}',
            "an hour",
        ),
        (
            b'{"partition": "2026-12-07T12", "last_seq": 0, "last_hash": "' + b"a" * 64 + b'"}',
            "last_seq",
        ),
        (b'{"partition": "2026-12-07T12", "last_seq": 1, "last_hash": "xyz"}', "64 lowercase hex"),
    ],
)
def test_a_line_that_is_not_a_checkpoint_is_named(
    tmp_path: Path, line: bytes, message: str
) -> None:
    path = checkpoints_path(tmp_path)
    append_checkpoint(path, TWELVE)
    with path.open("ab") as file:
        file.write(line.rstrip(b"\n") + b"\n")
    loaded = load_checkpoints(path)
    assert loaded.checkpoints == {"2026-12-07T12": TWELVE}
    [(number, problem)] = loaded.unreadable
    assert number == 2 and message in problem
    with pytest.raises(CheckpointFileError, match=message):
        parse_checkpoint(line.decode("utf-8", "replace"))


def test_the_file_is_opened_for_appending_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags: list[int] = []
    real_open = os.open

    def spying(path: object, flag: int, *args: object) -> int:
        flags.append(flag)
        return real_open(path, flag, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spying)
    append_checkpoint(checkpoints_path(tmp_path), TWELVE)
    assert flags[0] & os.O_APPEND and not flags[0] & os.O_TRUNC


def test_a_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = checkpoints_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\n" + TWELVE.line().encode())
    loaded = load_checkpoints(path)
    assert loaded.checkpoints == {"2026-12-07T12": TWELVE}
    assert loaded.unreadable == [(1, "not UTF-8")]
