"""Pseudonyms (HMAC-SHA256) and the scrubber that hides card numbers in unknown payloads."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events.pseudonymize import PSEUDONYM_PREFIX, Pseudonymizer
from tests.eventdata import card, with_luhn_digit

pytestmark = pytest.mark.unit

KEY = b"k" * 32
P = Pseudonymizer(KEY)


@given(st.text(max_size=100), st.binary(min_size=32, max_size=200))
def test_pseudonyms_are_hmac_sha256(value: str, key: bytes) -> None:
    expected = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    assert Pseudonymizer(key).pseudonym(value) == expected
    assert Pseudonymizer(key).pseudonyms([value, value]) == [expected, expected]


@given(st.lists(st.sampled_from(["4111111111111111", "5555555555554444", "x", ""]), max_size=30))
def test_repeated_values_get_the_same_pseudonyms_in_order(values: list[str]) -> None:
    assert P.pseudonyms(values) == [P.pseudonym(value) for value in values]


def test_pseudonyms_depend_on_the_key() -> None:
    assert P.pseudonym("4111111111111111") != Pseudonymizer(b"j" * 32).pseudonym("4111111111111111")


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Pseudonymizer(b"short")


@pytest.mark.parametrize(
    "text",
    [
        "card 4111111111111111 used",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "x4111111111111111y",
    ],
)
def test_card_numbers_in_text_are_replaced(text: str) -> None:
    scrubbed = P.scrub_text(text)
    assert "1111 1111" not in scrubbed and "4111111111111111" not in scrubbed
    assert PSEUDONYM_PREFIX + P.pseudonym("4111111111111111") in scrubbed


@pytest.mark.parametrize(
    "text",
    ["order 12345", "2024-05-01T12:00:00Z", "4111111111111112", "tel +33 1 23 45 67 89"],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert P.scrub_text(text) == text


def test_long_digit_runs_are_hidden_whole() -> None:
    text = "00" + "4111111111111111" + "0000"
    assert P.scrub_text(text) == PSEUDONYM_PREFIX + P.pseudonym(text)


def test_scrub_reaches_keys_numbers_and_nesting() -> None:
    pan = "4111111111111111"
    document = {pan: [1, {"x": int(pan)}, float(pan), f"card {pan}"], "n": 12, "ok": True}
    scrubbed = P.scrub(document)
    assert pan not in json.dumps(scrubbed)
    assert scrubbed["n"] == 12 and scrubbed["ok"] is True


def test_scrub_survives_hostile_nesting() -> None:
    value: Any = "4111111111111111"
    for _ in range(100_000):
        value = [value]
    scrubbed = P.scrub(value)
    for _ in range(100_000):
        scrubbed = scrubbed[0]
    assert scrubbed.startswith(PSEUDONYM_PREFIX)


@given(
    st.integers(min_value=0, max_value=10**15 - 1),
    st.sampled_from(["", " ", "-"]),
    st.text(alphabet="xyz :,.", max_size=5),  # a run of hex is an identifier (see below)
)
def test_no_generated_card_number_survives_scrubbing(n: int, separator: str, around: str) -> None:
    pan = card(n)
    written = separator.join(pan[i : i + 4] for i in range(0, 16, 4))
    document = {"note": around + written + around, "nested": [{"k": int(pan)}]}
    assert pan not in json.dumps(P.scrub(document)).replace(separator or "\0", "")
    assert pan not in P.scrub_text(around + written + around).replace(separator or "\0", "")


@given(st.text(alphabet="0123456789", min_size=11, max_size=18).filter(lambda s: s[0] != "0"))
def test_any_luhn_valid_run_is_replaced(prefix: str) -> None:  # no card starts with 0
    pan = with_luhn_digit(prefix)
    assert pan not in P.scrub_text(f"[{pan}]")
