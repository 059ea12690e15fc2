"""NCRONTAB parsing and next occurrences, against known answers and an independent search."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devhost.timer.ncrontab import FIELD_KINDS, CrontabSchedule, FieldKind, ScheduleError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("expression", "base", "expected"),
    [
        ("0 */5 * * * *", datetime(2026, 1, 1, 10, 2, 3), datetime(2026, 1, 1, 10, 5)),
        ("0 0 * * * *", datetime(2026, 1, 1, 10, 0, 0), datetime(2026, 1, 1, 11, 0)),
        ("*/15 * * * * *", datetime(2026, 1, 1, 10, 0, 59), datetime(2026, 1, 1, 10, 1, 0)),
        ("* * * * * *", datetime(2026, 1, 1, 10, 0, 0, 999999), datetime(2026, 1, 1, 10, 0, 1)),
        ("0 30 9 * * 1-5", datetime(2026, 1, 2, 10, 0), datetime(2026, 1, 5, 9, 30)),
        ("0 30 9 * Jan Mon", datetime(2026, 1, 27, 10, 0), datetime(2027, 1, 4, 9, 30)),
        ("0 0 9-17 * * *", datetime(2026, 1, 1, 17, 0), datetime(2026, 1, 2, 9, 0)),
        # February 29th comes around in leap years only.
        ("0 0 0 29 2 *", datetime(2026, 3, 1), datetime(2028, 2, 29)),
        ("0 0 0 29 Feb *", datetime(2028, 2, 29), datetime(2032, 2, 29)),
        # Months without a 31st are skipped.
        ("0 0 0 31 * *", datetime(2026, 1, 31), datetime(2026, 3, 31)),
        ("0 0 0 31 * *", datetime(2026, 5, 31), datetime(2026, 7, 31)),
        ("0 0 12 30 * *", datetime(2026, 1, 30, 12), datetime(2026, 3, 30, 12)),
        # Year rollover.
        ("0 0 0 1 1 *", datetime(2026, 12, 31, 23, 59, 59), datetime(2027, 1, 1)),
        (
            "59 59 23 31 12 *",
            datetime(2026, 12, 31, 23, 59, 59),
            datetime(2027, 12, 31, 23, 59, 59),
        ),
        ("* * * * * *", datetime(2026, 12, 31, 23, 59, 59), datetime(2027, 1, 1)),
        # Day of month AND day of week must both match (NCrontab), e.g. Friday the 13th.
        ("0 0 0 13 * 5", datetime(2026, 1, 1), datetime(2026, 2, 13)),
        ("0 0 0 13 * Fri", datetime(2026, 2, 14), datetime(2026, 3, 13)),
        ("0 0 0 1 * Mon", datetime(2026, 1, 1), datetime(2026, 6, 1)),
        # Five fields: no seconds, second 0.
        ("*/10 * * * *", datetime(2026, 1, 1, 10, 1, 30), datetime(2026, 1, 1, 10, 10)),
        ("30 9 * * 1-5", datetime(2026, 1, 2, 9, 30), datetime(2026, 1, 5, 9, 30)),
        # Steps.
        ("5/20 * * * * *", datetime(2026, 1, 1, 10, 0, 30), datetime(2026, 1, 1, 10, 0, 45)),
        ("5/20 * * * * *", datetime(2026, 1, 1, 10, 0, 45), datetime(2026, 1, 1, 10, 1, 5)),
        ("10-30/10 * * * * *", datetime(2026, 1, 1, 10, 0, 30), datetime(2026, 1, 1, 10, 1, 10)),
        ("0 0 0 */10 * *", datetime(2026, 1, 21), datetime(2026, 1, 31)),
        ("0 0 0 * * */2", datetime(2026, 1, 1), datetime(2026, 1, 3)),
        # A reversed range is swapped, as NCrontab does.
        ("0 0 22-2 * * *", datetime(2026, 1, 1, 23, 0), datetime(2026, 1, 2, 2, 0)),
        # Names: any prefix, case-insensitive; the first name that fits wins.
        ("0 0 12 * * Sat,sun", datetime(2026, 1, 1), datetime(2026, 1, 3, 12)),
        ("0 0 0 1 dec *", datetime(2026, 1, 1), datetime(2026, 12, 1)),
        ("0 0 0 1 JANUARY *", datetime(2026, 1, 1), datetime(2027, 1, 1)),
        ("0 0 0 1 Ju *", datetime(2026, 1, 1), datetime(2026, 6, 1)),
        ("0 0 0 * Mar-May Tue-Thu", datetime(2026, 1, 1), datetime(2026, 3, 3)),
    ],
)
def test_known_next_occurrences(expression: str, base: datetime, expected: datetime) -> None:
    schedule = CrontabSchedule.parse(expression)
    assert schedule.next_after(base) == expected
    assert schedule.matches(expected)


def test_every_other_day_of_week_means_sunday_tuesday_thursday_saturday() -> None:
    assert CrontabSchedule.parse("0 0 0 * * */2").days_of_week == (0, 2, 4, 6)


def test_a_date_that_never_occurs_has_no_next_occurrence() -> None:
    assert CrontabSchedule.parse("0 0 0 31 2 *").next_after(datetime(2026, 1, 1)) is None
    assert CrontabSchedule.parse("0 0 0 30 Feb *").next_after(datetime(2026, 1, 1)) is None


def test_the_last_representable_time_has_no_successor() -> None:
    schedule = CrontabSchedule.parse("* * * * * *")
    assert schedule.next_after(datetime(9999, 12, 31, 23, 59, 59)) is None
    assert schedule.next_after(datetime(9999, 12, 31, 23, 59, 58)) == datetime(
        9999, 12, 31, 23, 59, 59
    )


def test_five_fields_mean_second_zero() -> None:
    schedule = CrontabSchedule.parse("*/5 * * * *")
    assert schedule.seconds == (0,)
    assert not schedule.has_seconds
    assert schedule.minutes == tuple(range(0, 60, 5))


def test_extra_spaces_between_fields_are_ignored() -> None:
    assert CrontabSchedule.parse("  0  */5 * * * *  ").minutes == tuple(range(0, 60, 5))


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("0 */5 * * * *", True),
        ("0 0 * * * *", True),
        ("0 0 9-17 * * *", True),
        ("*/10 0 3 * * *", False),  # seconds 0,10,...: the host prints a list, no range
        ("* 0 3 * * *", True),
        ("0 30 9 * * *", False),
        ("0 0,30 9 * * *", False),
        ("30 9 * * *", False),
        ("* 9 * * *", True),
    ],
)
def test_interval_schedules_are_told_from_point_in_time_ones(
    expression: str, interval: bool
) -> None:
    assert CrontabSchedule.parse(expression).is_interval is interval


@pytest.mark.parametrize(
    ("expression", "field", "fragment"),
    [
        ("60 * * * * *", "second", "60 is out of range 0-59"),
        ("* 60 * * * *", "minute", "out of range 0-59"),
        ("* * 24 * * *", "hour", "out of range 0-23"),
        ("* * * 0 * *", "day", "out of range 1-31"),
        ("* * * 32 * *", "day", "out of range 1-31"),
        ("* * * * 13 *", "month", "out of range 1-12"),
        ("* * * * 0 *", "month", "out of range 1-12"),
        ("* * * * * 7", "day-of-week", "use 0"),
        ("*/0 * * * * *", "second", "at least 1"),
        ("*/x * * * * *", "second", "not a whole number"),
        ("*/ * * * * *", "second", "not a whole number"),
        ("*/-1 * * * * *", "second", "not a whole number"),
        ("/5 * * * * *", "second", "nothing to step through"),
        ("1,,2 * * * * *", "second", "empty value"),
        ("1, * * * * *", "second", "empty value"),
        ("a * * * * *", "second", "not a number"),
        ("1-2-3 * * * * *", "second", "not a number"),
        ("? * * * * *", "second", "not a number"),
        ("0 0 0 L * *", "day", "not a number"),
        ("* * * * Foo *", "month", "not a month name"),
        ("* * * * * Funday", "day-of-week", "not a day-of-week name"),
        ("* * * * * -1", "day-of-week", "name"),
        ("* * * * * ５", "day-of-week", "name"),  # a full-width digit is not a digit here
        ("0 5-70 * * * *", "minute", "70 is out of range"),
        ("*/5 * * 1-12/0 *", "month", "at least 1"),
    ],
)
def test_malformed_fields_are_named(expression: str, field: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        CrontabSchedule.parse(expression)
    assert raised.value.field == field
    assert field in str(raised.value)
    assert fragment in str(raised.value)


@pytest.mark.parametrize("expression", ["", "   ", "* * * *", "* * * * * * *", "0 */5"])
def test_a_wrong_number_of_fields_is_refused(expression: str) -> None:
    with pytest.raises(ScheduleError, match="fields"):
        CrontabSchedule.parse(expression)


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


# --- properties -------------------------------------------------------------------------


def _item(kind: FieldKind) -> st.SearchStrategy[str]:
    value = st.integers(kind.low, kind.high)
    numbers = st.one_of(
        st.just("*"),
        value.map(str),
        st.builds(lambda a, b: f"{a}-{b}", value, value),
        st.builds(lambda n: f"*/{n}", st.integers(1, kind.high + 1)),
        st.builds(lambda a, n: f"{a}/{n}", value, st.integers(1, kind.high + 1)),
        st.builds(lambda a, b, n: f"{a}-{b}/{n}", value, value, st.integers(1, kind.high + 1)),
    )
    if not kind.names:
        return numbers
    names = st.sampled_from(kind.names).map(lambda name: name[:3])
    return st.one_of(numbers, names)


def _field(kind: FieldKind) -> st.SearchStrategy[str]:
    return st.lists(_item(kind), min_size=1, max_size=3).map(",".join)


expressions = st.one_of(
    st.tuples(*(_field(kind) for kind in FIELD_KINDS)).map(" ".join),
    st.tuples(*(_field(kind) for kind in FIELD_KINDS[1:])).map(" ".join),
)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))


def _search(schedule: CrontabSchedule, base: datetime, years: int = 30) -> datetime | None:
    """The brute-force answer: walk the days, then every time of a matching day in order."""
    base = base.replace(microsecond=0)
    day = base.date()
    for _ in range(366 * years):
        if (
            day.month in schedule.months
            and day.day in schedule.days
            and day.isoweekday() % 7 in schedule.days_of_week
        ):
            for hour, minute, second in itertools.product(
                schedule.hours, schedule.minutes, schedule.seconds
            ):
                candidate = datetime.combine(day, time(hour, minute, second))
                if candidate > base:
                    return candidate
        day += timedelta(days=1)
        if day > date(2200, 1, 1):
            break
    return None


@settings(max_examples=300, deadline=None)
@given(expression=expressions, base=moments)
def test_next_occurrence_is_the_first_matching_time_after_base(
    expression: str, base: datetime
) -> None:
    schedule = CrontabSchedule.parse(expression)
    found = schedule.next_after(base)
    expected = _search(schedule, base)
    if expected is None:
        # Nothing within the searched years: the parser must not have found anything there.
        assert found is None or found - base > timedelta(days=366 * 29)
        return
    assert found == expected
    assert found > base
    assert schedule.matches(found)
    following = schedule.next_after(found)
    assert following is None or following > found


@settings(max_examples=300, deadline=None)
@given(expression=expressions, base=moments)
def test_next_occurrence_matches_every_field(expression: str, base: datetime) -> None:
    schedule = CrontabSchedule.parse(expression)
    found = schedule.next_after(base)
    if found is None:
        return
    assert found > base
    assert found.second in schedule.seconds
    assert found.minute in schedule.minutes
    assert found.hour in schedule.hours
    assert found.day in schedule.days
    assert found.month in schedule.months
    assert found.isoweekday() % 7 in schedule.days_of_week


cron_alphabet = st.sampled_from(list("0123456789*/-, ?LW#JanFebMonSun\t"))


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(), st.text(cron_alphabet)))
def test_garbage_raises_nothing_but_schedule_error(text: str) -> None:
    try:
        schedule = CrontabSchedule.parse(text)
    except ScheduleError:
        return
    schedule.next_after(datetime(2026, 1, 1))
