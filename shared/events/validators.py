"""Checks on field values beyond their JSON types: Luhn, MCC, ISO 4217 and ISO 3166 codes."""

from __future__ import annotations

from shared.events.iso_codes import ISO_3166_COUNTRIES, ISO_4217_CURRENCIES

_CURRENCIES = frozenset(ISO_4217_CURRENCIES)
_COUNTRIES = frozenset(ISO_3166_COUNTRIES)

# Luhn over bytes: digits at odd positions from the right count as-is, the others doubled
# (with 9 subtracted past 9); `bytes.translate` + `sum` keep the loop in C.
_PLAIN = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED = bytes.maketrans(b"0123456789", bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))


def is_ascii_digits(value: str) -> bool:
    """True for a non-empty string of ASCII digits only (no signs, spaces or Unicode digits)."""
    return value.isascii() and value.isdigit()


def luhn_valid(value: str) -> bool:
    """True if value is ASCII digits whose Luhn (mod 10) checksum is 0."""
    if not is_ascii_digits(value):
        return False
    digits = value.encode("ascii")
    total = sum(digits[-1::-2].translate(_PLAIN)) + sum(digits[-2::-2].translate(_DOUBLED))
    return total % 10 == 0


def is_card_number(value: str) -> bool:
    """A payment card number: 12 to 19 ASCII digits passing Luhn."""
    # Inlined rather than calling luhn_valid: this runs once per payment on the hot path.
    if not (12 <= len(value) <= 19 and value.isascii() and value.isdigit()):
        return False
    digits = value.encode("ascii")
    total = sum(digits[-1::-2].translate(_PLAIN)) + sum(digits[-2::-2].translate(_DOUBLED))
    return total % 10 == 0


def is_currency(value: str) -> bool:
    """An active ISO 4217 alphabetic currency code, upper case."""
    return value in _CURRENCIES


def is_country(value: str) -> bool:
    """An ISO 3166-1 alpha-2 country code, upper case."""
    return value in _COUNTRIES


def is_mcc(value: str) -> bool:
    """A merchant category code (ISO 18245): exactly four ASCII digits."""
    return len(value) == 4 and is_ascii_digits(value)
