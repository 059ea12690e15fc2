"""What the lake can hold: the window of event times, and the range of each typed field.

An event time becomes the bronze `event_time` and its UTC date the `event_date` partition, so
it must convert to UTC (year 1 at +14:00 does not) and be believable. One window serves HTTP
intake, the hub ingest and file landing: from the Unix epoch to `MAX_CLOCK_SKEW` past now.
A contract's typed fields get the checks their Arrow column needs: int64 for integers,
datetimes that convert to UTC, and finite floats (as JSON has them).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import msgspec

EARLIEST_EVENT_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_CLOCK_SKEW = dt.timedelta(days=1)  # how far ahead of ours a sender's clock may run
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Aware datetimes that convert to UTC without leaving years 1 to 9999 (offsets are < 1 day).
_UTC_SAFE_MIN = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_UTC_SAFE_MAX = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


class EventTimeWindow:
    """The event times accepted: `EARLIEST_EVENT_TIME` to `MAX_CLOCK_SKEW` after `now`."""

    def __init__(self, now: dt.datetime) -> None:
        self.earliest = EARLIEST_EVENT_TIME
        self.latest = now + MAX_CLOCK_SKEW
        # The bounds in each UTC offset met: datetimes that share a tzinfo object compare by
        # their fields, 8 times faster than across offsets (msgspec shares one per offset).
        self._bounds: dict[dt.tzinfo | None, tuple[dt.datetime, dt.datetime]] = {
            dt.UTC: (self.earliest, self.latest)
        }

    def contains(self, moment: dt.datetime) -> bool:
        """Whether `moment` is in the window (a naive one is taken as UTC)."""
        zone = moment.tzinfo
        bounds = self._bounds.get(zone)
        if bounds is None:
            bounds = self._bounds[zone] = self._bounds_in(zone)
        return bounds[0] <= moment <= bounds[1]

    def outside(self, times: Sequence[dt.datetime | None]) -> list[int]:
        """The indexes of the times outside the window (None, no time, is not); fast when
        all share one offset, as a batch from one source does."""
        if None in times:
            present = [t for t in times if t is not None]
        else:
            present = cast(list[dt.datetime], times)
        if not present:
            return []
        contains = self.contains
        if contains(min(present)) and contains(max(present)):
            return []
        return [i for i, t in enumerate(times) if t is not None and not contains(t)]

    def problem(self, moment: dt.datetime | None, name: str = "time") -> str | None:
        """Why `moment` is outside the window (without quoting it), or None."""
        if moment is None or self.contains(moment):
            return None
        return (
            f"{name} is outside the accepted window, {self.earliest:%Y-%m-%dT%H:%M:%SZ} to"
            f" {MAX_CLOCK_SKEW.days} day(s) after the time of receipt"
        )

    def _bounds_in(self, zone: dt.tzinfo | None) -> tuple[dt.datetime, dt.datetime]:
        if zone is None:
            return self.earliest.replace(tzinfo=None), self.latest.replace(tzinfo=None)
        return self.earliest.astimezone(zone), self.latest.astimezone(zone)


def field_range_check(info: msgspec.inspect.Type) -> tuple[Callable[[Any], bool], str] | None:
    """The check a field of this msgspec type needs to fit its bronze column, and its
    problem; None for types every value of which fits."""
    if isinstance(info, msgspec.inspect.Metadata):
        return field_range_check(info.type)
    if isinstance(info, msgspec.inspect.IntType):
        bounded = (info.ge is not None and info.ge >= INT64_MIN) or (
            info.gt is not None and info.gt >= INT64_MIN - 1
        )
        capped = (info.le is not None and info.le <= INT64_MAX) or (
            info.lt is not None and info.lt <= INT64_MAX + 1
        )
        if bounded and capped:
            return None
        return _fits_int64, "is outside the 64-bit integer range"
    if isinstance(info, msgspec.inspect.FloatType):
        if None in (
            info.ge if info.gt is None else info.gt,
            info.le if info.lt is None else info.lt,
        ):
            # JSON, the events' format, has no NaN or infinity: a file (Parquet) may not either.
            return _finite, "must be a finite number"
        return None  # both bounds refuse NaN and infinity
    if isinstance(info, msgspec.inspect.DateTimeType):
        return _converts_to_utc, "is a time outside years 1 to 9999 in UTC"
    if isinstance(info, msgspec.inspect.UnionType):
        checks = [field_range_check(t) for t in info.types]
        found = [c for c in checks if c is not None]
        if len(found) == 1:
            accepts, problem = found[0]
            return (lambda value: value is None or accepts(value)), problem
    return None


def _fits_int64(value: Any) -> bool:
    return not isinstance(value, int) or INT64_MIN <= value <= INT64_MAX


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _converts_to_utc(value: Any) -> bool:
    return not isinstance(value, dt.datetime) or _UTC_SAFE_MIN <= _aware(value) <= _UTC_SAFE_MAX


def _aware(moment: dt.datetime) -> dt.datetime:
    # Naive times are taken as UTC, as the bronze row builder takes them.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
