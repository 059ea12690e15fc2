"""Validators: Luhn, card numbers, ISO 4217, ISO 3166 and MCC, on good and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events.iso_codes import ISO_3166_COUNTRIES, ISO_4217_CURRENCIES
from shared.events.validators import (
    invalid_card_numbers,
    is_card_number,
    is_country,
    is_currency,
    is_mcc,
    luhn_valid,
)
from tests.eventdata import with_luhn_digit

pytestmark = pytest.mark.unit


def reference_luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@pytest.mark.parametrize(
    "number", ["4111111111111111", "5555555555554444", "378282246310005", "79927398713"]
)
def test_known_valid_numbers_pass_luhn(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "79927398710", "1234567812345678"])
def test_known_invalid_numbers_fail_luhn(number: str) -> None:
    assert not luhn_valid(number)


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_luhn_agrees_with_the_textbook_algorithm(digits: str) -> None:
    assert luhn_valid(digits) == reference_luhn(digits)


@given(st.text(alphabet="0123456789", min_size=11, max_size=18))
def test_a_check_digit_makes_any_prefix_valid(prefix: str) -> None:
    assert is_card_number(with_luhn_digit(prefix))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "4111 1111 1111 1111",
        "-4111111111111111",
        "４１１１１１１１１１１１１１１１",  # full-width digits are digits to str.isdigit
        "٤١١١١١١١١١١١١١١١",  # Arabic-Indic digits
        "41111111111111\ud800",  # a lone surrogate
        "4111111111111111\x00",
        "411111111111",  # 12 digits but failing Luhn
        "41111111111111111111",  # 20 digits
    ],
)
def test_card_numbers_must_be_12_to_19_ascii_digits_passing_luhn(value: str) -> None:
    assert not is_card_number(value)


@given(st.text(max_size=64))
def test_validators_take_any_text_without_raising(value: str) -> None:
    for check in (luhn_valid, is_card_number, is_currency, is_country, is_mcc):
        assert isinstance(check(value), bool)


def test_code_lists_are_complete_and_upper_case() -> None:
    assert len(set(ISO_3166_COUNTRIES)) == 249
    assert len(set(ISO_4217_CURRENCIES)) >= 170
    assert all(len(c) == 2 and c.isupper() for c in ISO_3166_COUNTRIES)
    assert all(len(c) == 3 and c.isupper() for c in ISO_4217_CURRENCIES)


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (is_currency, ["EUR", "USD", "JPY", "CHF"], ["eur", "EURO", "XXX", "ABC", ""]),
        (is_country, ["FR", "US", "JP", "DE"], ["fr", "FRA", "UK", "XX", ""]),
        (is_mcc, ["5411", "0742", "9999"], ["541", "54111", "54a1", "５４１１", ""]),
    ],
)
def test_code_checks(check: object, good: list[str], bad: list[str]) -> None:
    assert callable(check)
    assert all(check(value) for value in good)
    assert not any(check(value) for value in bad)


CARDISH = st.one_of(
    st.text(alphabet="0123456789", max_size=22),
    st.text(alphabet="0123456789", min_size=11, max_size=18).map(with_luhn_digit),
    st.text(alphabet="0123456789 -４٤\x00é", max_size=22),
    st.text(max_size=22),
)


@given(st.lists(CARDISH, max_size=80))
def test_the_column_check_agrees_with_the_value_check(values: list[str]) -> None:
    expected = [i for i, value in enumerate(values) if not is_card_number(value)]
    assert invalid_card_numbers(values) == expected


def test_the_column_check_finds_each_bad_value_in_a_large_batch() -> None:
    values = [with_luhn_digit(f"4{n:014d}") for n in range(1000)]
    values[3] = values[3][:-1] + str((int(values[3][-1]) + 1) % 10)
    values[500] = "4111 1111 1111 1111"
    values[998] = "４" + values[998][1:]
    values[999] = values[999] + "0000"
    assert invalid_card_numbers(values) == [3, 500, 998, 999]
