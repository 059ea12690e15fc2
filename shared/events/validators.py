"""Checks on field values beyond their JSON types: Luhn, MCC, ISO 4217 and ISO 3166 codes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


_CARD_WIDTH = 19
# Luhn over a right-aligned digit matrix: the sum of weight * digit, less 9 for each doubled
# digit of 5 or more (2d - 9 is 2d's digit sum then).
_DOUBLED_POSITIONS = np.array([(_CARD_WIDTH - 1 - i) % 2 for i in range(_CARD_WIDTH)], np.int32)
_WEIGHTS = _DOUBLED_POSITIONS + 1
_MIN_VECTOR = 16  # below this, one value at a time is faster


def invalid_card_numbers(values: Sequence[str]) -> list[int]:
    """The indexes of the values `is_card_number` refuses, checked all at once in C."""
    count = len(values)
    if count < _MIN_VECTOR:
        return [i for i, value in enumerate(values) if not is_card_number(value)]
    text = pa.array(values, pa.string())
    # Left-padding with zeros keeps the Luhn sum; every value is then 19 bytes exactly if
    # and only if all are ASCII and at most 19 long, so the bytes form a digit matrix.
    padded = pc.utf8_lpad(text, width=_CARD_WIDTH, padding="0")
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)[padded.offset :]
    start, end = int(offsets[0]), int(offsets[count])
    if end - start != _CARD_WIDTH * count:
        return [i for i, value in enumerate(values) if not is_card_number(value)]
    raw = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[start:end]
    digits = (raw - ord("0")).reshape(count, _CARD_WIDTH)  # a non-digit wraps past 9
    lengths = pc.binary_length(text).to_numpy()
    ok = (lengths >= 12) & (lengths <= _CARD_WIDTH)
    not_digits = digits > 9
    if not_digits.any():
        ok &= ~not_digits.any(axis=1)
        digits = np.where(not_digits, 0, digits)
    matrix = digits.astype(np.int32)
    total = matrix @ _WEIGHTS - 9 * ((matrix >= 5).astype(np.int32) @ _DOUBLED_POSITIONS)
    ok &= total % 10 == 0
    return [int(i) for i in np.flatnonzero(~ok)]


def is_currency(value: str) -> bool:
    """An active ISO 4217 alphabetic currency code, upper case."""
    return value in _CURRENCIES


def is_country(value: str) -> bool:
    """An ISO 3166-1 alpha-2 country code, upper case."""
    return value in _COUNTRIES


def is_mcc(value: str) -> bool:
    """A merchant category code (ISO 18245): exactly four ASCII digits."""
    return len(value) == 4 and is_ascii_digits(value)
