"""What the file readers yield: records and rejects, each with its line (or row) number."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_RECORD_BYTES = 1024 * 1024  # an event over 1 MiB is rejected, as over HTTP and Event Hubs
# A chunk also ends after this much of the file, so that large records cannot make one chunk
# (up to `chunk_records` of them, 1 MiB each) exhaust memory.
MAX_CHUNK_BYTES = 16 * 1024 * 1024


class UnsupportedFileType(ValueError):
    """The file's extension is not one of .csv, .json, .ndjson, .jsonl, .parquet."""


@dataclass(frozen=True)
class FileRecord:
    """One record: `line` is where it starts (1-based; the row number for Parquet)."""

    line: int
    data: dict[str, Any]


@dataclass(frozen=True)
class FileReject:
    """A record that could not be read. `raw` is its text, at most MAX_RECORD_BYTES, and may
    hold personal data: whoever dead-letters it must pseudonymize it as it does event payloads.
    `line` 0 means the whole file (it is not in the format its name says)."""

    line: int
    reason: str
    raw: bytes = b""


@dataclass
class FileChunk:
    """The next records of a file, with the rejects met among them, in file order."""

    file: str
    records: list[FileRecord] = field(default_factory=list)
    rejects: list[FileReject] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.rejects)
