"""Parquet landing files, read a row group batch at a time; the row number stands for the line."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from shared.files.records import FileChunk, FileRecord, FileReject

_SPOOL_IN_MEMORY = 16 * 1024 * 1024


def read_parquet(stream: IO[bytes], name: str, chunk_records: int) -> Iterator[FileChunk]:
    """Chunks of rows as dicts; Parquet needs to seek, so a stream that cannot is spooled to
    a temporary file first (in memory only up to 16 MiB)."""
    if _seekable(stream):
        yield from _batches(stream, name, chunk_records)
        return
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        shutil.copyfileobj(stream, spool, 1024 * 1024)
        spool.seek(0)
        yield from _batches(spool, name, chunk_records)


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError):
        return False


def _batches(source: IO[bytes], name: str, chunk_records: int) -> Iterator[FileChunk]:
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as error:
        yield FileChunk(name, rejects=[FileReject(0, f"not a Parquet file: {error}")])
        return
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=chunk_records):
            records = [FileRecord(row + i + 1, data) for i, data in enumerate(batch.to_pylist())]
            row += batch.num_rows
            yield FileChunk(name, records=records)
    except (pa.ArrowInvalid, OSError) as error:
        yield FileChunk(name, rejects=[FileReject(row + 1, f"unreadable Parquet data: {error}")])
