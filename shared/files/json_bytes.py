"""JSON bytes from outside, decoded with msgspec, with invalid UTF-8 told apart from bad JSON.

msgspec up to 0.22 raised UnicodeDecodeError for invalid UTF-8; 0.23 reports it as a
DecodeError. Callers catch UnicodeDecodeError for "not UTF-8" and DecodeError for "not JSON",
whichever msgspec is installed.
"""

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")
_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


def decode_json(raw: bytes | bytearray | memoryview, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode raw with decoder; invalid UTF-8 raises UnicodeDecodeError, bad JSON DecodeError."""
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError:
        bytes(raw).decode("utf-8")  # raises UnicodeDecodeError where the text is not UTF-8
        raise


def decode_any_json(raw: bytes | bytearray | memoryview) -> Any:
    """decode_json into plain Python values."""
    return decode_json(raw, _ANY)
