"""Timer schedules as the Functions host reads them: NCRONTAB in a time zone, or a TimeSpan."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devhost.timer.ncrontab import CrontabSchedule, ScheduleError

TIME_ZONE_SETTING = "WEBSITE_TIME_ZONE"
_ONE_SECOND = timedelta(seconds=1)
_MAX_DAYS = 10_675_199  # TimeSpan.MaxValue.Days
# UTC offsets change at most twice a year in practice; probing daily finds every change.
_OFFSET_PROBE = timedelta(days=1)
_TIMESPAN_FORMS = (
    re.compile(r"(?P<days>[0-9]+)"),
    re.compile(
        r"(?:(?P<days>[0-9]+)\.)?(?P<hours>[0-9]+):(?P<minutes>[0-9]+)"
        r"(?::(?P<seconds>[0-9]+)(?:\.(?P<fraction>[0-9]+))?)?"
    ),
    re.compile(
        r"(?P<days>[0-9]+):(?P<hours>[0-9]+):(?P<minutes>[0-9]+):(?P<seconds>[0-9]+)"
        r"(?:\.(?P<fraction>[0-9]+))?"
    ),
)


class TimeZoneError(ValueError):
    """WEBSITE_TIME_ZONE names no time zone the devhost knows."""


class Schedule(Protocol):
    """When a timer fires; instants are timezone-aware and returned in UTC."""

    @property
    def expression(self) -> str: ...

    @property
    def adjust_for_dst(self) -> bool: ...

    def next_after(self, instant: datetime) -> datetime | None: ...


def resolve_time_zone(name: str | None) -> tzinfo:
    """UTC when unset, else the IANA time zone of that name (e.g. `Europe/Amsterdam`)."""
    if name is None or not name.strip():
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise TimeZoneError(
            f"app setting {TIME_ZONE_SETTING}={name!r} is not an IANA time zone name the "
            "devhost knows (e.g. 'Europe/Amsterdam'; Windows names such as "
            "'W. Europe Standard Time' are not supported)"
        ) from error


def parse_schedule(text: str, zone: tzinfo = UTC) -> Schedule:
    """An NCRONTAB expression, else a TimeSpan, as the host tries them; raise ScheduleError."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("the schedule is empty")
    try:
        return CronSchedule(CrontabSchedule.parse(text), zone)
    except ScheduleError as cron_error:
        candidate = text.strip()
        if any(form.fullmatch(candidate) for form in _TIMESPAN_FORMS):
            return IntervalSchedule(text, parse_timespan(candidate))
        raise cron_error from None


def parse_timespan(text: str) -> timedelta:
    """A .NET TimeSpan string: `hh:mm[:ss[.f]]`, `d.hh:mm[:ss[.f]]`, `d:hh:mm:ss[.f]` or `d`.

    As in .NET, hours of 24 or more in `hh:mm` or `hh:mm:ss` make it read as `d:hh` or
    `d:hh:mm` (so `24:00:00` is 24 days, not one); a fraction of a second has up to 7 digits.
    """
    text = text.strip()
    match = next(filter(None, (form.fullmatch(text) for form in _TIMESPAN_FORMS)), None)
    if match is None:
        raise ScheduleError(f"{text!r} is not a TimeSpan (hh:mm:ss or d.hh:mm:ss)")
    groups = match.groupdict()
    fraction = groups.pop("fraction", None) or ""
    parts = {key: int(value) for key, value in groups.items() if value is not None}
    overflowing = match.re is _TIMESPAN_FORMS[1] and "days" not in parts and parts["hours"] >= 24
    if overflowing and not fraction:
        shifted = {"days": parts["hours"], "hours": parts["minutes"]}
        if "seconds" in parts:
            shifted["minutes"] = parts["seconds"]
        parts = shifted
    if len(fraction) > 7:
        raise ScheduleError(f"TimeSpan {text!r}: at most seven digits after the seconds")
    for unit, limit in (("days", _MAX_DAYS), ("hours", 23), ("minutes", 59), ("seconds", 59)):
        if parts.get(unit, 0) > limit:
            raise ScheduleError(
                f"TimeSpan {text!r}: {unit} {parts[unit]} is out of range 0-{limit}"
            )
    interval = timedelta(
        days=parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
        microseconds=int(fraction.ljust(7, "0")) // 10 if fraction else 0,
    )
    if interval <= timedelta(0):
        raise ScheduleError(f"TimeSpan {text!r}: the interval must be longer than zero")
    return interval


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: the next run is the interval after the last one started."""

    expression: str
    interval: timedelta

    @property
    def adjust_for_dst(self) -> bool:
        return False

    def next_after(self, instant: datetime) -> datetime | None:
        try:
            return (instant + self.interval).astimezone(UTC)
        except OverflowError:
            return None


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB schedule evaluated on the wall clock of a time zone.

    Across daylight-saving changes it does what the Functions host does: a wall time skipped
    when clocks spring forward fires at the instant it would have had on the old offset (02:30
    fires at 03:30); in the hour repeated when clocks fall back, a point-in-time schedule fires
    only on the first pass and an interval schedule fires on both.
    """

    crontab: CrontabSchedule
    zone: tzinfo = UTC

    @property
    def expression(self) -> str:
        return self.crontab.expression

    @property
    def adjust_for_dst(self) -> bool:
        return True

    def next_after(self, instant: datetime) -> datetime | None:
        """The first occurrence strictly after `instant` (aware), in UTC."""
        moment = instant.astimezone(UTC).replace(microsecond=0)
        if self.zone is UTC:
            wall = self.crontab.next_after(moment.replace(tzinfo=None))
            return None if wall is None else wall.replace(tzinfo=UTC)
        offset = _offset(self.zone, moment)
        lower = _wall(moment, offset)
        segment_start = moment
        point_in_time = not self.crontab.is_interval
        while True:
            wall = self.crontab.next_after(lower)
            if wall is None:
                return None
            candidate = _instant(wall, offset)
            change = _first_offset_change(self.zone, segment_start, candidate, offset)
            if change is None:
                if point_in_time and candidate.astimezone(self.zone).fold == 1:
                    lower = wall
                    continue
                return candidate
            new_offset = _offset(self.zone, change)
            if new_offset > offset:
                skipped = self._skipped_occurrence(change, offset, new_offset)
                if skipped is not None:
                    return skipped
            segment_start, offset = change, new_offset
            lower = _wall(change, new_offset) - _ONE_SECOND

    def _skipped_occurrence(
        self, change: datetime, old: timedelta, new: timedelta
    ) -> datetime | None:
        """The first wall time the spring-forward jump skipped, on the old offset, if any.

        It competes only with regular occurrences in the first `new - old` after the change.
        """
        gap = new - old
        skipped_wall = self.crontab.next_after(_wall(change, old) - _ONE_SECOND)
        if skipped_wall is None or skipped_wall >= _wall(change, new):
            return None
        skipped = _instant(skipped_wall, old)
        regular_wall = self.crontab.next_after(_wall(change, new) - _ONE_SECOND)
        if regular_wall is not None and regular_wall < _wall(change + gap, new):
            return min(skipped, _instant(regular_wall, new))
        return skipped


def _offset(zone: tzinfo, instant: datetime) -> timedelta:
    return instant.astimezone(zone).utcoffset() or timedelta(0)


def _wall(instant: datetime, offset: timedelta) -> datetime:
    return (instant + offset).replace(tzinfo=None)


def _instant(wall: datetime, offset: timedelta) -> datetime:
    return (wall - offset).replace(tzinfo=UTC)


def _first_offset_change(
    zone: tzinfo, after: datetime, until: datetime, offset: timedelta
) -> datetime | None:
    """The first whole-second instant in (after, until] whose UTC offset is not `offset`."""
    low = after
    while low < until:
        high = min(low + _OFFSET_PROBE, until)
        if _offset(zone, high) != offset:
            while high - low > _ONE_SECOND:
                middle = low + timedelta(seconds=(high - low) // _ONE_SECOND // 2)
                if _offset(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


def is_frequent(schedule: Schedule, now: datetime) -> bool:
    """True if the schedule fires more than once in the minute after `now`.

    The host turns schedule monitoring off for such timers (and for TimeSpans under a minute).
    """
    if isinstance(schedule, IntervalSchedule):
        return schedule.interval < timedelta(minutes=1)
    first = schedule.next_after(now)
    if first is None:
        return False
    second = schedule.next_after(first)
    return second is not None and second < now + timedelta(minutes=1)
