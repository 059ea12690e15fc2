"""Read a landing file by its extension: .csv, .json, .ndjson or .jsonl, .parquet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import IO

from shared.files.csv_reader import read_csv
from shared.files.json_reader import read_json, read_ndjson
from shared.files.parquet_reader import read_parquet
from shared.files.records import FileChunk, UnsupportedFileType

Reader = Callable[[IO[bytes], str, int], Iterator[FileChunk]]
READERS: dict[str, Reader] = {
    ".csv": read_csv,
    ".json": read_json,
    ".ndjson": read_ndjson,
    ".jsonl": read_ndjson,
    ".parquet": read_parquet,
}


def file_format(name: str) -> str:
    """The format of a file by its name's extension; raises UnsupportedFileType."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in READERS:
        supported = ", ".join(sorted(READERS))
        raise UnsupportedFileType(f"{name}: not one of {supported}")
    return suffix


def read_records(stream: IO[bytes], name: str, *, chunk_records: int = 5000) -> Iterator[FileChunk]:
    """The file's records and rejects in chunks of at most `chunk_records` (one Parquet batch
    may bring that many), in file order, holding only one chunk in memory at a time."""
    if chunk_records < 1:
        raise ValueError("chunk_records must be at least 1")
    return READERS[file_format(name)](stream, name, chunk_records)
