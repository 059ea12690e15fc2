"""Physical lines of a byte stream, each capped in length, so no line can exhaust memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from shared.files.records import MAX_RECORD_BYTES


def bounded_lines(
    stream: IO[bytes], max_bytes: int = MAX_RECORD_BYTES
) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without its end, too long) for each line; a line longer than
    `max_bytes` is skipped to its end and given as its first `max_bytes` bytes."""
    number = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        too_long = len(line) > max_bytes and not line.endswith(b"\n")
        if too_long:
            head = line[:max_bytes]
            while line and not line.endswith(b"\n"):
                line = stream.readline(max_bytes + 1)
            yield number, head, True
            continue
        yield number, line.rstrip(b"\r\n"), False
