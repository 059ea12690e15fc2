"""The limiter's arithmetic, pure: the sliding minute of one-second slots, the quota periods,
and the accuracy measure a benchmark reports.

Admissions are counted per slot of `SLOT_SECONDS`. A slot counts against a per-minute limit
from its start until `WINDOW_SECONDS` after its end: while `current` is the current slot, the
slots `current - SLOTS` to `current` (61 of them) count. So whenever the limiter admits a
request, every admission of the 60 seconds before it is counted, wherever the slot edges fall,
and over any 60 seconds of real time the admitted tokens stay within the limit, exactly. The
price: a slot's tokens come back up to one slot late (60 to 61 s after they were admitted,
under 2% of the minute). A fixed minute would let twice the limit through at its edge; 60
slots without the extra one, the limit plus what one slot admitted. Slots a clock ahead of
this one's put in the future count too, so nothing admitted is missed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

WINDOW_SECONDS = 60
SLOT_SECONDS = 1
SLOTS = WINDOW_SECONDS // SLOT_SECONDS


def slot_of(now: float) -> int:
    """The slot `now` (epoch seconds) falls in."""
    return math.floor(now / SLOT_SECONDS)


def in_window(slot: int, current: int) -> bool:
    """Whether a slot still counts while `current` is the current slot."""
    return slot >= current - SLOTS


def window_counts(counts: Mapping[str, Any], current: int) -> dict[int, int]:
    """The counts (slot number as text -> count) that are in the window, none below zero."""
    found: dict[int, int] = {}
    for key, value in counts.items():
        slot = _slot_number(key)
        if slot is not None and in_window(slot, current):
            found[slot] = max(0, whole_count(value))
    return found


def stale_slots(counts: Mapping[str, Any], current: int) -> list[str]:
    """The keys of slots out of the window, oldest first."""
    stale = [(s, k) for k in counts if (s := _slot_number(k)) is not None and s < current - SLOTS]
    return [key for _, key in sorted(stale)]


def retry_after_ms(window: Mapping[int, int], excess: int, now: float) -> int:
    """Milliseconds until slots holding at least `excess` have left the window (at least 1)."""
    freed = 0
    for slot in sorted(window):
        freed += window[slot]
        if freed >= excess:
            return max(1, math.ceil(((slot + SLOTS + 1) * SLOT_SECONDS - now) * 1000))
    return WINDOW_SECONDS * 1000


def period_key(now: float, period: str) -> str:
    """The key of the quota period `now` is in: `d2025-01-31` for a day, `m2025-01` a month."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    return moment.strftime("d%Y-%m-%d" if period == "day" else "m%Y-%m")


def period_end(now: float, period: str) -> dt.datetime:
    """When the quota period `now` is in ends (UTC)."""
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    if period == "day":
        return dt.datetime.combine(moment.date(), dt.time(), dt.UTC) + dt.timedelta(days=1)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def admission_ratio(
    admissions: Iterable[tuple[float, int]], limit: int, window_seconds: float = WINDOW_SECONDS
) -> float:
    """The most tokens admitted in any `window_seconds` of real time (any start, not only the
    limiter's slots), divided by the limit: the limiter's accuracy, from (time, tokens) pairs.
    The limiter keeps it at 1 or less for the times it was given; a caller that records times
    other than the `now` it passed may see it above 1 by what was admitted in between."""
    if limit <= 0:
        raise ValueError("the limit is positive")
    ordered = sorted(admissions)
    most = total = end = 0
    for start, (at, _) in enumerate(ordered):
        while end < len(ordered) and ordered[end][0] < at + window_seconds:
            total += ordered[end][1]
            end += 1
        most = max(most, total)
        total -= ordered[start][1]
    return most / limit


def _slot_number(key: str) -> int | None:
    return int(key) if key.isascii() and key.isdigit() and len(key) < 16 else None


def whole_count(value: Any) -> int:
    """A stored count as an integer (0 for what is not a finite number)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(value)
