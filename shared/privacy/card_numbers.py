"""The one card number (PAN) detector: every string the platform stores or logs goes through it.

A card number is 12 to 19 digits passing Luhn, the first of them not 0 (ISO/IEC 7812 issues
no card under industry identifier 0), written as real text writes it: in one run
(`4920777766665550`), or in groups of at least three digits with up to three separators
between them (spaces, tabs, non-breaking spaces, dots, dashes: `4920  7777.6666-5550`), in
any Unicode decimal digits, next to anything else (`card:4920777766665550`, `...5550 1/27`).
Every run of consecutive groups of 12 to 19 digits is checked, so a card number is found
beside other digits (`4920777766665550 1`), and where candidates overlap, the union of all
of them is replaced, so no part of a card number is left. A run of more than 19 digits in a
row is replaced whole when it may hide a card number (a digit from 1 to 9 and 11 after it).

Left as they are, because they are identifiers and not card numbers written as text: the
platform's own `pseudonym:<64 hex>` tokens (so that scrubbing twice changes nothing), canonical
UUIDs, and hex identifiers (hashes, trace and span ids: 16 hex characters or more with a
letter, as a word of their own); a chain of digit groups does not run on into one.

`might_hold_card_number` is the cheap first look (a superset of what the detector finds), and
`candidates` the same over Arrow columns at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from shared.events.validators import luhn_valid

MIN_DIGITS = 12
MAX_DIGITS = 19
MIN_GROUP = 3  # digits in each group of a card number written in groups (4-4-4-4, 4-6-5, ...)
MAX_SEPARATORS = 3  # separator characters between two groups ("  ", " - ")
PSEUDONYM_PREFIX = "pseudonym:"

# What may stand between a card number's digit groups, as code point ranges: every Unicode
# white space, the hyphen-minus, the Unicode dashes and minus sign, and the full stop.
_SEPARATOR_RANGES: tuple[tuple[int, int], ...] = (
    (0x09, 0x0D),
    (0x1C, 0x20),
    (0x2D, 0x2E),  # - .
    (0x85, 0x85),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2010, 0x2015),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x2212, 0x2212),
    (0x3000, 0x3000),
)


def _python_class(ranges: tuple[tuple[int, int], ...]) -> str:
    parts = (
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        for lo, hi in ranges
    )
    return "[" + "".join(parts) + "]"


def _re2_class(ranges: tuple[tuple[int, int], ...]) -> str:
    parts = (f"\\x{{{lo:x}}}" if lo == hi else f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in ranges)
    return "[" + "".join(parts) + "]"


_SEP = _python_class(_SEPARATOR_RANGES)
_GAP = f"{_SEP}{{0,{MAX_SEPARATORS}}}"
# Python's \d and RE2's \p{Nd} are the same class: Unicode decimal digits.
_PREFILTER = re.compile(rf"\d(?:{_GAP}\d){{{MIN_DIGITS - 1}}}")
# In RE2 (Arrow's regex engine), ASCII only, which it runs several times faster than Unicode
# classes: digits and ASCII separators as above, or any non-ASCII character at all.
_ASCII_SEPARATORS = [r for r in _SEPARATOR_RANGES if r[1] < 0x80]
# A card number starts with a digit from 1 to 9 (ISO/IEC 7812's industry identifier; none is
# issued under 0), which keeps zero-padded identifiers (`tx-000000000123`) out of the screen.
_RE2_SCREEN = (
    rf"[1-9](?:{_re2_class(tuple(_ASCII_SEPARATORS))}{{0,{MAX_SEPARATORS}}}[0-9])"
    rf"{{{MIN_DIGITS - 1}}}|[^\x{{0}}-\x{{7f}}]"
)

_HEX = "[0-9A-Fa-f]"
# A hex identifier: 16 hex characters or more, with a letter, as a word of its own.
_HEX_TOKEN = rf"(?=[0-9]*[A-Fa-f]){_HEX}{{16,}}(?![0-9A-Za-z])"
_KEPT = (
    rf"{PSEUDONYM_PREFIX}[0-9a-f]{{64}}"
    rf"|(?<![0-9A-Za-z]){_HEX}{{8}}(?:-{_HEX}{{4}}){{3}}-{_HEX}{{12}}(?![0-9A-Za-z])"
    rf"|(?<![0-9A-Za-z]){_HEX_TOKEN}"
)
# A chain of digit groups, which does not run on into a hex identifier after a separator.
_SCAN = re.compile(
    rf"(?P<kept>{_KEPT})|(?P<chain>\d+(?:{_SEP}{{1,{MAX_SEPARATORS}}}(?!{_HEX_TOKEN})\d+)*)"
)
_GROUP = re.compile(r"\d+")
_MAY_HIDE_ONE = re.compile(r"[1-9][0-9]{11}")


def might_hold_card_number(text: str) -> bool:
    """False when `text` surely holds no card number (fewer than 12 digits close together)."""
    return len(text) >= MIN_DIGITS and _PREFILTER.search(text) is not None


def candidates(columns: Sequence[pa.Array]) -> list[list[int]]:
    """For each `pa.string()` column, the indexes of the strings that may hold a card number:
    a superset of `might_hold_card_number` (ASCII digits close together, or any non-ASCII
    character), screened in C by RE2 over all the columns at once (its pattern is compiled
    per call, so one call for many columns costs less than one per column)."""
    lengths = [len(column) for column in columns]
    if not sum(lengths):
        return [[] for _ in columns]
    joined = columns[0] if len(columns) == 1 else pa.concat_arrays(list(columns))
    hits = pc.match_substring_regex(joined, _RE2_SCREEN)
    flagged = pc.indices_nonzero(hits.fill_null(False)).to_numpy()
    found: list[list[int]] = []
    start = 0
    for length in lengths:
        found.append((flagged[(flagged >= start) & (flagged < start + length)] - start).tolist())
        start += length
    return found


def card_number_spans(text: str) -> list[tuple[int, int, str]]:
    """Where `text` holds card numbers (or runs of more than 19 digits): start, end, and the
    digits in ASCII, for each stretch to replace, left to right, without overlaps."""
    if not might_hold_card_number(text):
        return []
    found: list[tuple[int, int, str]] = []
    for match in _SCAN.finditer(text):
        if match.lastgroup == "chain":
            found.extend(_chain_spans(text, match.start(), match.end()))
    return found


def redact(text: str, replacement: Callable[[str], str]) -> str:
    """`text` with each stretch `card_number_spans` finds replaced by `replacement(digits)`."""
    spans = card_number_spans(text)
    if not spans:
        return text
    parts: list[str] = []
    at = 0
    for start, end, digits in spans:
        parts.append(text[at:start])
        parts.append(replacement(digits))
        at = end
    parts.append(text[at:])
    return "".join(parts)


def _chain_spans(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    groups = [(m.start(), m.end()) for m in _GROUP.finditer(text, start, end)]
    digits = [_ascii_digits(text[a:b]) for a, b in groups]
    hits: list[tuple[int, int]] = []  # first and last group of each candidate found
    for first, head in enumerate(digits):
        if len(head) > MAX_DIGITS:
            if _MAY_HIDE_ONE.search(head):
                hits.append((first, first))
            continue
        if head[0] == "0":
            continue
        joined = ""
        for last in range(first, len(digits)):
            part = digits[last]
            if last > first and (len(part) < MIN_GROUP or len(head) < MIN_GROUP):
                break
            joined += part
            if len(joined) > MAX_DIGITS:
                break
            if len(joined) >= MIN_DIGITS and luhn_valid(joined):
                hits.append((first, last))
    if not hits:
        return []
    merged: list[list[int]] = []
    for first, last in sorted(hits):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [
        (groups[first][0], groups[last][1], "".join(digits[first : last + 1]))
        for first, last in merged
    ]


def _ascii_digits(group: str) -> str:
    if group.isascii():
        return group
    return "".join(str(unicodedata.decimal(char)) for char in group)
