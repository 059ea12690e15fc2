"""JSON landing files (an array of objects, or one object) and NDJSON (one object per line).

A JSON array is split into its elements as the bytes stream past, tracking only strings and
bracket depth, so a file of any size is read in bounded memory; each element is then decoded
alone, and a bad element is rejected without losing the rest of the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from shared.files.json_bytes import decode_any_json
from shared.files.lines import bounded_lines
from shared.files.records import (
    MAX_CHUNK_BYTES,
    MAX_RECORD_BYTES,
    FileChunk,
    FileRecord,
    FileReject,
)

_BLOCK = 64 * 1024
_IN_STRING = re.compile(rb'["\\\n]')
_STRUCTURE = re.compile(rb'["\[\]{},\n]')
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
_QUOTE, _BACKSLASH, _NEWLINE, _COMMA = ord('"'), ord("\\"), ord("\n"), ord(",")
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")
_PAIRS = {ord("]"): ord("["), ord("}"): ord("{")}


class _Structure(ValueError):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line


def _decode(line: int, raw: bytes) -> FileRecord | FileReject:
    try:
        data: Any = decode_any_json(raw)
    except msgspec.DecodeError as error:
        return FileReject(line, f"invalid JSON: {error}", raw)
    except UnicodeDecodeError as error:
        return FileReject(line, f"not UTF-8: {error.reason}", raw)
    except RecursionError:
        return FileReject(line, "JSON nested too deeply", raw)
    if not isinstance(data, dict):
        return FileReject(line, f"not a JSON object but {type(data).__name__}", raw)
    return FileRecord(line, data)


def _elements(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line, bytes) per top-level element (None: over MAX_RECORD_BYTES); raises _Structure."""
    mode: str | None = None  # "array", "object" or "done"
    open_brackets, line = bytearray(), 1
    in_string = escaped = expecting = after_comma = False
    element_line: int | None = None
    buffer, oversized, first = bytearray(), False, True
    while block := stream.read(_BLOCK):
        if first:
            block, first = block.removeprefix(b"\xef\xbb\xbf"), False
        position, size, segment = 0, len(block), 0
        while position < size:
            if escaped:
                position, escaped = position + 1, False
                continue
            if in_string:
                found = _IN_STRING.search(block, position)
                if found is None:
                    break
                byte, position = block[found.start()], found.end()
                if byte == _QUOTE:
                    in_string = False
                elif byte == _BACKSLASH:
                    escaped = True
                else:
                    line += 1
                continue
            if mode is None or mode == "done" or expecting:
                found = _NOT_SPACE.search(block, position)
                end = size if found is None else found.start()
                line += block.count(b"\n", position, end)
                if found is None:
                    position = size
                    break
                position, byte = end, block[end]
                if mode is None:
                    if byte not in _OPEN:
                        raise _Structure(
                            line, "a JSON file holds an array of objects or one object"
                        )
                    mode = "array" if byte == ord("[") else "object"
                    if mode == "object":
                        element_line, segment = line, position
                    open_brackets.append(byte)
                    position, expecting = position + 1, mode == "array"
                    continue
                if mode == "done":
                    raise _Structure(line, "data after the end of the JSON value")
                expecting = False
                if byte == ord("]"):
                    if after_comma:
                        raise _Structure(line, "a trailing comma in the array")
                elif byte == _COMMA:
                    raise _Structure(line, "an empty element in the array")
                else:
                    element_line, segment, after_comma = line, position, False
            found = _STRUCTURE.search(block, position)
            if found is None:
                break
            byte, at, position = block[found.start()], found.start(), found.end()
            if byte == _QUOTE:
                in_string = True
            elif byte == _NEWLINE:
                line += 1
            elif byte in _OPEN:
                open_brackets.append(byte)
                if len(open_brackets) > MAX_RECORD_BYTES:
                    raise _Structure(line, "nested deeper than any record may be")
            elif byte in _CLOSE:
                _close(open_brackets, byte, line)
                if not open_brackets:
                    if element_line is not None:
                        end = at + 1 if mode == "object" else at
                        yield _finish(element_line, buffer, block[segment:end], oversized)
                        element_line, buffer, oversized = None, bytearray(), False
                    mode = "done"
            elif byte == _COMMA and len(open_brackets) == 1 and mode == "array":
                if element_line is not None:
                    yield _finish(element_line, buffer, block[segment:at], oversized)
                element_line, buffer, oversized = None, bytearray(), False
                expecting = after_comma = True
        if element_line is not None and not oversized:
            buffer.extend(block[segment:])
            if len(buffer) > MAX_RECORD_BYTES:
                buffer, oversized = bytearray(), True
    if mode != "done":
        raise _Structure(line, "the file ends inside the JSON value (truncated?)")


def _close(open_brackets: bytearray, byte: int, line: int) -> None:
    """Close the innermost bracket of the kind; a mismatch inside an element closes through
    it (that element will not decode, but the elements after it are found)."""
    opener = _PAIRS[byte]
    if open_brackets and open_brackets[-1] == opener:
        open_brackets.pop()
        return
    at = open_brackets.rfind(opener)
    if at <= 0:
        raise _Structure(line, f"{chr(byte)!r} closes nothing that is open")
    del open_brackets[at:]


def _finish(line: int, buffer: bytearray, tail: bytes, oversized: bool) -> tuple[int, bytes | None]:
    if oversized or len(buffer) + len(tail) > MAX_RECORD_BYTES:
        return line, None
    return line, bytes(buffer + tail).strip()


def read_json(stream: IO[bytes], name: str, chunk_records: int) -> Iterator[FileChunk]:
    """Chunks of the objects in a JSON array (or the one object), each with its start line;
    a chunk holds at most `chunk_records` of them, or about MAX_CHUNK_BYTES of the file."""
    chunk, held = FileChunk(name), 0
    try:
        for line, raw in _elements(stream):
            if raw is None:
                chunk.rejects.append(FileReject(line, "record larger than 1 MiB"))
            else:
                held += len(raw)
                outcome = _decode(line, raw)
                if isinstance(outcome, FileRecord):
                    chunk.records.append(outcome)
                else:
                    chunk.rejects.append(outcome)
            if len(chunk) >= chunk_records or held >= MAX_CHUNK_BYTES:
                yield chunk
                chunk, held = FileChunk(name), 0
    except _Structure as error:
        chunk.rejects.append(FileReject(error.line, f"malformed JSON file: {error}"))
    if len(chunk):
        yield chunk


def read_ndjson(stream: IO[bytes], name: str, chunk_records: int) -> Iterator[FileChunk]:
    """Chunks of one JSON object per line (at most `chunk_records`, or about MAX_CHUNK_BYTES of
    the file); blank lines are skipped."""
    chunk, held = FileChunk(name), 0
    for number, raw, too_long in bounded_lines(stream):
        held += len(raw)
        if too_long:
            chunk.rejects.append(FileReject(number, "line longer than 1 MiB", raw))
        elif raw.strip():
            outcome = _decode(number, raw)
            if isinstance(outcome, FileRecord):
                chunk.records.append(outcome)
            else:
                chunk.rejects.append(outcome)
        if len(chunk) >= chunk_records or (held >= MAX_CHUNK_BYTES and len(chunk)):
            yield chunk
            chunk, held = FileChunk(name), 0
    if len(chunk):
        yield chunk
