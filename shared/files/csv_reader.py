"""CSV landing files: a header row, then one record per row; empty cells are missing values."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO

from shared.files.lines import bounded_lines
from shared.files.records import (
    MAX_CHUNK_BYTES,
    MAX_RECORD_BYTES,
    FileChunk,
    FileRecord,
    FileReject,
)


def read_csv(stream: IO[bytes], name: str, chunk_records: int) -> Iterator[FileChunk]:
    """Chunks of at most `chunk_records` records and rejects (or about MAX_CHUNK_BYTES of the
    file); values stay text (the contract converts them), and each keeps the line its row
    starts on."""
    bad_lines: list[FileReject] = []
    consumed = [0]  # bytes of the file read so far

    def text() -> Iterator[str]:
        for number, raw, too_long in bounded_lines(stream):
            consumed[0] += len(raw) + 1
            if too_long:
                bad_lines.append(FileReject(number, "line longer than 1 MiB", raw))
                yield "\n"
                continue
            try:
                yield raw.decode("utf-8") + "\n"
            except UnicodeDecodeError as error:
                bad_lines.append(FileReject(number, f"not UTF-8 at byte {error.start}", raw))
                yield "\n"  # an empty row, skipped, keeps the line count true

    reader = csv.reader(text(), strict=True)
    header: list[str] | None = None
    chunk, chunk_start = FileChunk(name), 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            chunk.rejects.append(FileReject(reader.line_num, f"malformed CSV: {error}"))
            continue
        finally:
            chunk.rejects.extend(bad_lines)
            bad_lines.clear()
        if not row or row == [""]:
            continue
        if header is None:
            header = _header(row)
            if header is None:
                chunk.rejects.append(
                    FileReject(start, "the header needs unique, non-empty column names")
                )
                break
            continue
        if len(row) != len(header):
            raw = ",".join(row).encode()[:MAX_RECORD_BYTES]
            problem = f"has {len(row)} fields, the header has {len(header)}"
            chunk.rejects.append(FileReject(start, problem, raw))
        else:
            data = {
                key: (value if value != "" else None)
                for key, value in zip(header, row, strict=True)
            }
            chunk.records.append(FileRecord(start, data))
        if len(chunk) >= chunk_records or consumed[0] - chunk_start >= MAX_CHUNK_BYTES:
            yield chunk
            chunk, chunk_start = FileChunk(name), consumed[0]
    if header is None and not chunk.rejects:
        chunk.rejects.append(FileReject(0, "the file has no header row"))
    if len(chunk):
        yield chunk


def _header(row: list[str]) -> list[str] | None:
    names = [cell.strip() for cell in row]
    names[0] = names[0].removeprefix("\ufeff")
    if any(not name for name in names) or len(set(names)) != len(names):
        return None
    return names
