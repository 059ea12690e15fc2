"""Invalid UTF-8 is told apart from bad JSON the same way on every msgspec version."""

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.files.json_bytes import decode_any_json, decode_json

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "raw",
    [b'{"a": "\xff"}', b"\xff\xfe{}", b'["\xc3"]', b'{"\xed\xa0\x80": 1}', b"[1, \x80]"],
)
def test_invalid_utf8_is_a_unicode_error(raw: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        decode_any_json(raw)


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"a": 1,}', b""])
def test_bad_json_in_utf8_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_any_json(raw)


def test_a_typed_decoder_keeps_its_type_errors() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_json(b'"x"', msgspec.json.Decoder(int))
    with pytest.raises(UnicodeDecodeError):
        decode_json(memoryview(b'"\xff"'), msgspec.json.Decoder(str))


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_one_of_the_two(raw: bytes) -> None:
    try:
        decode_any_json(raw)
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    except msgspec.DecodeError:
        raw.decode("utf-8")  # only valid UTF-8 is ever called bad JSON
