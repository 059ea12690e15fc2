"""NCRONTAB expressions as Azure Functions parses them, and their next wall-clock occurrence.

The grammar and the matching rules follow NCrontab (atifaziz/NCrontab), the library the
Functions host uses: six fields with seconds first, or five without seconds; `*`, lists, ranges,
steps, month and day names (any prefix of the English name, case-insensitive); day of week 0-6
with 0 = Sunday. A time matches when every field matches, so a day of month and a day of week
must BOTH match (NCrontab ANDs them, unlike Vixie cron, which ORs them).
"""

from __future__ import annotations

import bisect
import calendar
import re
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, time, timedelta

# The Gregorian calendar, weekdays included, repeats every 400 years: a day that does not
# occur within that span never occurs.
_CALENDAR_CYCLE_YEARS = 400
_DIGITS = re.compile(r"[0-9]+")


class ScheduleError(ValueError):
    """A schedule expression is malformed; the message names the field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FieldKind:
    """One field of an NCRONTAB expression: its name, range and value names."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()


SECOND = FieldKind("second", 0, 59)
MINUTE = FieldKind("minute", 0, 59)
HOUR = FieldKind("hour", 0, 23)
DAY = FieldKind("day", 1, 31)
MONTH = FieldKind("month", 1, 12, tuple(calendar.month_name[1:]))
DAY_OF_WEEK = FieldKind(
    "day-of-week",
    0,
    6,
    ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"),
)
FIELD_KINDS = (SECOND, MINUTE, HOUR, DAY, MONTH, DAY_OF_WEEK)
FIELD_ORDER = "{second} {minute} {hour} {day} {month} {day-of-week}"


def parse_field(kind: FieldKind, text: str) -> tuple[int, ...]:
    """The sorted values one field expression (e.g. `*/15`, `1-5`, `Mon,Wed`) stands for."""
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(kind, text, item))
    return tuple(sorted(values))


def _parse_item(kind: FieldKind, text: str, item: str) -> range:
    if not item:
        raise _field_error(kind, text, "an empty value (check the commas)")
    step = 1
    base = item
    slash = item.find("/")
    if slash == 0:
        raise _field_error(kind, text, f"{item!r} has a step but nothing to step through")
    if slash > 0:
        base, step_text = item[:slash], item[slash + 1 :]
        if not _DIGITS.fullmatch(step_text):
            raise _field_error(kind, text, f"the step {step_text!r} is not a whole number")
        step = int(step_text)
        if step < 1:
            raise _field_error(kind, text, "a step must be at least 1")
    if base == "*":
        return range(kind.low, kind.high + 1, step)
    dash = base.find("-")
    if dash > 0:
        first = _parse_value(kind, text, base[:dash])
        last = _parse_value(kind, text, base[dash + 1 :])
        # NCrontab swaps a reversed range rather than rejecting it.
        first, last = min(first, last), max(first, last)
        return range(first, last + 1, step)
    value = _parse_value(kind, text, base)
    # `a/n` means from a to the end of the field's range, every n.
    return range(value, (kind.high if slash > 0 else value) + 1, step)


def _parse_value(kind: FieldKind, text: str, token: str) -> int:
    if _DIGITS.fullmatch(token):
        value = int(token)
        if not kind.low <= value <= kind.high:
            hint = " (NCrontab has no 7 for Sunday; use 0)" if kind is DAY_OF_WEEK else ""
            raise _field_error(kind, text, f"{value} is out of range {kind.low}-{kind.high}{hint}")
        return value
    if not kind.names:
        raise _field_error(
            kind, text, f"{token!r} is not a number between {kind.low} and {kind.high}"
        )
    wanted = token.casefold()
    for offset, name in enumerate(kind.names):
        if name.casefold().startswith(wanted):
            return kind.low + offset
    raise _field_error(
        kind, text, f"{token!r} is not a {kind.name} name (use one of {', '.join(kind.names)})"
    )


def _field_error(kind: FieldKind, text: str, problem: str) -> ScheduleError:
    return ScheduleError(f"{kind.name} field {text!r}: {problem}", field=kind.name)


def _has_run(values: tuple[int, ...]) -> bool:
    return any(b - a == 1 for a, b in zip(values, values[1:], strict=False))


@dataclass(frozen=True)
class CrontabSchedule:
    """A parsed NCRONTAB expression; times are naive wall-clock times."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]
    has_seconds: bool

    @classmethod
    def parse(cls, expression: str) -> CrontabSchedule:
        """Parse six fields (seconds first) or five (seconds = 0); raise ScheduleError."""
        if not isinstance(expression, str):
            raise ScheduleError(f"a schedule must be a string, not {type(expression).__name__}")
        tokens = [token for token in expression.split(" ") if token]
        if len(tokens) not in (5, 6):
            raise ScheduleError(
                f"{expression!r} has {len(tokens)} fields; an NCRONTAB expression has six, "
                f"{FIELD_ORDER}, or five without the seconds"
            )
        kinds = FIELD_KINDS if len(tokens) == 6 else FIELD_KINDS[1:]
        fields = {
            kind.name: parse_field(kind, token) for kind, token in zip(kinds, tokens, strict=True)
        }
        return cls(
            expression=expression,
            seconds=fields.get(SECOND.name, (0,)),
            minutes=fields[MINUTE.name],
            hours=fields[HOUR.name],
            days=fields[DAY.name],
            months=fields[MONTH.name],
            days_of_week=fields[DAY_OF_WEEK.name],
            has_seconds=len(tokens) == 6,
        )

    @property
    def is_interval(self) -> bool:
        """True for repeating schedules (a range or `*` in the time fields), as the host decides.

        The Functions host formats the parsed expression and calls it an interval when the
        seconds (six-field form only), minutes or hours field prints as `*` or a range. It uses
        this to keep point-in-time schedules from running twice when clocks fall back.
        """
        fields: tuple[tuple[int, ...], ...] = (self.minutes, self.hours)
        if self.has_seconds:
            fields = (self.seconds, *fields)
        return any(_has_run(values) for values in fields)

    def matches(self, moment: datetime) -> bool:
        """True if the wall-clock time (to the second) is an occurrence of the schedule."""
        return (
            moment.microsecond == 0
            and moment.second in self.seconds
            and moment.minute in self.minutes
            and moment.hour in self.hours
            and self._date_matches(moment.date())
        )

    def next_after(self, moment: datetime) -> datetime | None:
        """The first matching wall-clock time strictly after `moment`, or None if none ever is.

        `moment` is naive (wall clock); any time zone on it is ignored.
        """
        wall = moment.replace(tzinfo=None, microsecond=0)
        if wall >= datetime(MAXYEAR, 12, 31, 23, 59, 59):
            return None
        start = wall + timedelta(seconds=1)
        if self._date_matches(start.date()):
            at = self._time_on_or_after(start.time())
            if at is not None:
                return datetime.combine(start.date(), at)
        day = self._next_date(start.date())
        if day is None:
            return None
        return datetime.combine(day, time(self.hours[0], self.minutes[0], self.seconds[0]))

    def _date_matches(self, day: date) -> bool:
        return (
            day.month in self.months
            and day.day in self.days
            and (day.weekday() + 1) % 7 in self.days_of_week
        )

    def _time_on_or_after(self, at: time) -> time | None:
        for hour in self.hours[bisect.bisect_left(self.hours, at.hour) :]:
            if hour > at.hour:
                return time(hour, self.minutes[0], self.seconds[0])
            for minute in self.minutes[bisect.bisect_left(self.minutes, at.minute) :]:
                if minute > at.minute:
                    return time(hour, minute, self.seconds[0])
                index = bisect.bisect_left(self.seconds, at.second)
                if index < len(self.seconds):
                    return time(hour, minute, self.seconds[index])
        return None

    def _next_date(self, after: date) -> date | None:
        year, month, first_day = after.year, after.month, after.day + 1
        last_year = min(MAXYEAR, after.year + _CALENDAR_CYCLE_YEARS + 1)
        while year <= last_year:
            if month in self.months:
                days_in_month = calendar.monthrange(year, month)[1]
                for day in self.days[bisect.bisect_left(self.days, first_day) :]:
                    if day > days_in_month:
                        break
                    candidate = date(year, month, day)
                    if (candidate.weekday() + 1) % 7 in self.days_of_week:
                        return candidate
            month, first_day = month + 1, 1
            if month > 12:
                month, year = 1, year + 1
        return None
