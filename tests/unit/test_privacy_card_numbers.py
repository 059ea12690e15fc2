"""The one card number detector: card numbers in the separators real text uses, in any digits,
beside other digits; identifiers and the platform's own pseudonyms left alone."""

from __future__ import annotations

import hashlib
import json
import unicodedata

import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shared.events.pseudonymize import PSEUDONYM_PREFIX, Pseudonymizer
from shared.privacy.card_numbers import card_number_spans, might_hold_card_number
from tests.eventdata import with_luhn_digit

pytestmark = pytest.mark.unit

P = Pseudonymizer(b"k" * 32)
PAN = "4920777766665550"
SEPARATORS = [" ", "  ", "\t", ".", "-", " - ", "\u00a0", "\u2013", "\u2212", "\u3000", "\u202f"]
# Decimal digits of other scripts: fullwidth, Arabic-Indic, Devanagari.
DIGIT_ZEROS = [0x30, 0xFF10, 0x0660, 0x0966]


def digits_of(text: str) -> str:
    """Every decimal digit of `text`, in ASCII, separators and all else dropped."""
    return "".join(str(unicodedata.decimal(c)) for c in text if c.isdecimal())


def written(pan: str, sizes: list[int], separators: list[str], zero: int) -> str:
    """`pan` in groups of `sizes` (the last takes the rest), joined by `separators` in turn,
    in the digits that start at code point `zero`."""
    groups, at = [], 0
    for size in sizes:
        if at >= len(pan):
            break
        groups.append(pan[at : at + size])
        at += size
    if at < len(pan):
        groups.append(pan[at:])
    if len(groups) > 1 and len(groups[-1]) < 3:  # groups of a card are 3 digits or more
        groups[-2:] = [groups[-2] + groups[-1]]
    text = groups[0]
    for index, group in enumerate(groups[1:]):
        text += separators[index % len(separators)] + group
    return "".join(chr(zero + int(c)) for c in text if c.isdigit()) if zero != 0x30 else text


pans = st.builds(
    with_luhn_digit,
    st.text(alphabet="0123456789", min_size=11, max_size=18).filter(lambda s: s[0] != "0"),
)


@given(
    pans,
    st.lists(st.integers(min_value=3, max_value=8), min_size=1, max_size=6),
    st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=4),
    st.sampled_from(DIGIT_ZEROS),
    st.text(alphabet="abcxyz:;,([ ", max_size=5),
    st.sampled_from(["", " ", " 1/27", "-1", ".5", " 12", "  123 456", "x", ")"]),
)
@example(PAN, [16], [" "], 0x30, "", " 1/27")
@example(PAN, [4], ["  "], 0x30, "", "")
@example(PAN, [4], [".", "-"], 0x30, "", " 1")
def test_no_card_number_survives_in_any_writing(
    pan: str, sizes: list[int], separators: list[str], zero: int, before: str, after: str
) -> None:
    text = before + written(pan, sizes, separators, zero) + after
    scrubbed = P.scrub_text(text)
    assert pan not in digits_of(scrubbed.replace(PSEUDONYM_PREFIX + P.pseudonym(pan), ""))
    assert pan not in digits_of(scrubbed.split(PSEUDONYM_PREFIX)[0])
    assert might_hold_card_number(text)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("4920  7777.6666-5550", ""),
        ("4920777766665550 1/27", " 1/27"),
        ("4920777766665550-1", "-1"),
        ("4920.7777.6666.5550", ""),
        ("card:4920777766665550;", "card:;"),
        (
            "\uff14\uff19\uff12\uff10\uff17\uff17\uff17\uff17\uff16\uff16\uff16\uff16\uff15\uff15\uff15\uff10",
            "",
        ),
    ],
)
def test_the_reported_writings_are_replaced_by_the_cards_pseudonym(text: str, kept: str) -> None:
    scrubbed = P.scrub_text(text)
    token = PSEUDONYM_PREFIX + P.pseudonym(PAN)
    assert token in scrubbed
    assert scrubbed.replace(token, "") == kept


def test_a_json_number_with_a_fraction_is_scrubbed() -> None:
    document = json.loads(
        '{"n": 4011777766665550.5, "m": -4011777766665550, "big": 4.0117777666655507e18}'
    )
    scrubbed = P.scrub(document)
    assert "4011777766665550" not in json.dumps(scrubbed)
    assert "40117777666655" not in json.dumps(scrubbed)  # the rounded 19-digit one too
    assert scrubbed["n"] == PSEUDONYM_PREFIX + P.pseudonym("4011777766665550") + ".5"


@pytest.mark.parametrize(
    "text",
    [
        "tx-000000000123",  # zero-padded: no card number starts with 0
        "0004920777766665550",
        "123456-0123456789abcdef",  # a line and a 64-bit hash: the chain stops at the hash
        "span 00f067aa0ba902b7, trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "a4000000000000002a",  # a hex word of 18 characters, not a card number written
        "0" * 30,
    ],
)
def test_identifiers_that_only_look_like_digits_are_left_alone(text: str) -> None:
    assert P.scrub_text(text) == text


@given(st.uuids())
def test_uuids_are_identifiers_not_card_numbers(value: object) -> None:
    text = str(value)
    assert P.scrub_text(text) == text
    assert P.scrub_text(f"id={text}") == f"id={text}"


@given(
    st.binary(min_size=1, max_size=64), st.sampled_from([hashlib.sha256, hashlib.sha1, hashlib.md5])
)
def test_hex_digests_are_left_alone(data: bytes, digest: type) -> None:
    text = digest(data).hexdigest()
    if text.isdigit():  # no letter: only digits, which may hide a card number
        return
    assert P.scrub_text(f"trace {text}.") == f"trace {text}."


@given(st.text(alphabet="0123456789 -./abc:\u00a0\uff11", max_size=80))
def test_scrubbing_twice_changes_nothing(text: str) -> None:
    once = P.scrub_text(text)
    assert P.scrub_text(once) == once
    assert P.scrub(P.scrub({"k": once})) == P.scrub({"k": once})


@given(st.text(max_size=60))
def test_text_with_fewer_than_twelve_digits_is_unchanged(text: str) -> None:
    if sum(c.isdecimal() for c in text) < 12:
        assert P.scrub_text(text) == text
        assert card_number_spans(text) == []


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet="0123456789 -.x\u00a0\u2013\uff10\uff15\u0660", max_size=40),
            pans,
            pans.map(lambda pan: f"{pan[:4]}\u3000{pan[4:8]}\u202f{pan[8:]}"),
        ),
        min_size=0,
        max_size=40,
    )
)
def test_a_column_is_scrubbed_as_each_value_would_be(values: list[str | None]) -> None:
    expected = [None if v is None else P.scrub_text(v) for v in values]
    half = len(values) // 2  # two columns screened together, as bronze screens its columns
    columns = [pa.array(values[:half], pa.string()), pa.array(values[half:], pa.string())]
    scrubbed = P.scrub_columns(columns)
    got = [
        value
        for column, new in zip(columns, scrubbed, strict=True)
        for value in (column if new is None else new).to_pylist()
    ]
    assert got == expected


def test_an_unchanged_column_is_reported_as_unchanged() -> None:
    values = [f"evt-{n}" for n in range(100)]
    assert P.scrub_columns([pa.array(values, pa.string())]) == [None]


def test_long_hostile_text_is_scrubbed_in_linear_time() -> None:
    text = ("1 " * 200_000) + PAN + (" 123" * 100_000)
    assert PAN not in P.scrub_text(text)
