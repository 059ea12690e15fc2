"""The checkpoints file: the last hash of every closed hour of the audit chain, written once.

`<data dir>/audit/checkpoints.jsonl` holds one JSON line per closed partition,
`{"partition", "last_seq", "last_hash", "written_at"}`. It is only ever appended to (opened
with `O_APPEND`, fsync'd after each line) and never rewritten, so a chain edited and re-hashed
afterwards no longer ends in the hash written here. Reading it, the first line for a partition
wins: a line appended later cannot replace what was written when the hour closed. A line torn
by a crash in the middle of a write is left out (the next write starts on a new line, and the
hour is checkpointed again, since its head was not yet marked `checkpointed`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

CHECKPOINTS_FILE = Path("audit") / "checkpoints.jsonl"
_PARTITION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}")
_HASH = re.compile(r"[0-9a-f]{64}")


class CheckpointFileError(ValueError):
    """A line of the checkpoints file is not a checkpoint; the message names the line."""


@dataclass(frozen=True)
class Checkpoint:
    """The end of one closed partition of the chain: its last record's seq and hash."""

    partition: str
    last_seq: int
    last_hash: str
    written_at: str = ""

    def line(self) -> str:
        fields = {
            "partition": self.partition,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "written_at": self.written_at,
        }
        return json.dumps(fields, separators=(",", ":")) + "\n"


def checkpoints_path(data_dir: Path) -> Path:
    """Where the checkpoints file lives under a data dir: `<data dir>/audit/checkpoints.jsonl`."""
    return data_dir / CHECKPOINTS_FILE


def parse_checkpoint(text: str) -> Checkpoint:
    """One line of the file as a checkpoint, or CheckpointFileError saying what is wrong."""
    try:
        fields = json.loads(text)
    except ValueError as error:
        raise CheckpointFileError(f"not JSON: {error}") from error
    if not isinstance(fields, dict):
        raise CheckpointFileError("not a JSON object")
    partition, seq, last_hash = (
        fields.get("partition"),
        fields.get("last_seq"),
        fields.get("last_hash"),
    )
    if not isinstance(partition, str) or not _PARTITION.fullmatch(partition):
        raise CheckpointFileError(f"partition is an hour like 2026-12-07T12, not {partition!r}")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise CheckpointFileError(f"last_seq is the last record's seq (from 1), not {seq!r}")
    if not isinstance(last_hash, str) or not _HASH.fullmatch(last_hash):
        raise CheckpointFileError("last_hash is 64 lowercase hex digits")
    written_at = fields.get("written_at", "")
    return Checkpoint(partition, seq, last_hash, written_at if isinstance(written_at, str) else "")


@dataclass(frozen=True)
class CheckpointFile:
    """What the file holds: the checkpoints by partition (the first line for each), and the
    lines that are not checkpoints (number, what is wrong), left out."""

    checkpoints: dict[str, Checkpoint]
    unreadable: list[tuple[int, str]]


def load_checkpoints(path: Path) -> CheckpointFile:
    """The file read; an empty one when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return CheckpointFile({}, [])
    # What follows the last newline is empty, or a line cut short by a crash: left out.
    lines = data.split(b"\n")[:-1]
    found: dict[str, Checkpoint] = {}
    unreadable: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            checkpoint = parse_checkpoint(raw.decode("utf-8"))
        except UnicodeDecodeError:
            unreadable.append((number, "not UTF-8"))
            continue
        except CheckpointFileError as error:
            unreadable.append((number, str(error)))
            continue
        found.setdefault(checkpoint.partition, checkpoint)
    return CheckpointFile(found, unreadable)


def read_checkpoints(path: Path) -> dict[str, Checkpoint]:
    """Every checkpoint in the file by partition (the first line for each); {} without a file.
    A line that is not a checkpoint (one torn by a crash, then followed by others) is left
    out: `load_checkpoints` names such lines."""
    return load_checkpoints(path).checkpoints


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Append one line and fsync it (and the folder, when the file is new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        line = checkpoint.line().encode("utf-8")
        size = os.fstat(descriptor).st_size
        if size and _last_byte(path, size) != b"\n":
            line = b"\n" + line  # leave a torn line behind, on a line of its own
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if created:
        _fsync_folder(path.parent)


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as file:
        file.seek(size - 1)
        return file.read(1)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder: its metadata is durable there already
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
