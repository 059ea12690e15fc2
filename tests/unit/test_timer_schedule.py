"""TimeSpan schedules, time zones and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devhost.timer.ncrontab import ScheduleError
from devhost.timer.schedule import (
    CronSchedule,
    IntervalSchedule,
    TimeZoneError,
    is_frequent,
    parse_schedule,
    parse_timespan,
    resolve_time_zone,
)

pytestmark = pytest.mark.unit

LOS_ANGELES = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("01:00:00", timedelta(hours=1)),
        ("00:01:00", timedelta(minutes=1)),
        ("00:00:05", timedelta(seconds=5)),
        ("00:30", timedelta(minutes=30)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1.00:00:00", timedelta(days=1)),
        ("2.12:00", timedelta(days=2, hours=12)),
        ("1:02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:00:00.5", timedelta(milliseconds=500)),
        ("00:00:01.2500000", timedelta(seconds=1, milliseconds=250)),
        ("5", timedelta(days=5)),
        # .NET reads hours of 24 or more as days: "24:00:00" is 24 days, not one.
        ("24:00:00", timedelta(days=24)),
        ("25:01:02", timedelta(days=25, hours=1, minutes=2)),
        ("24:00", timedelta(days=24)),
        (" 01:00:00 ", timedelta(hours=1)),
    ],
)
def test_timespans_read_as_dotnet_reads_them(text: str, interval: timedelta) -> None:
    assert parse_timespan(text) == interval


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("00:00:00", "longer than zero"),
        ("0", "longer than zero"),
        ("00:60:00", "minutes 60 is out of range"),
        ("00:00:60", "seconds 60 is out of range"),
        ("1.24:00:00", "hours 24 is out of range"),
        ("25:61", "hours 61 is out of range"),
        ("00:00:00.12345678", "seven digits"),
        ("-01:00:00", "not a TimeSpan"),
        ("1:2:3:4:5", "not a TimeSpan"),
        ("01:00:00 extra", "not a TimeSpan"),
    ],
)
def test_bad_timespans_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ScheduleError, match=fragment):
        parse_timespan(text)


def test_parse_schedule_tries_ncrontab_first_then_timespan() -> None:
    cron = parse_schedule("0 */5 * * * *")
    assert isinstance(cron, CronSchedule)
    assert cron.adjust_for_dst is True
    interval = parse_schedule("00:00:10")
    assert isinstance(interval, IntervalSchedule)
    assert interval.interval == timedelta(seconds=10)
    assert interval.adjust_for_dst is False
    assert interval.expression == "00:00:10"


def test_a_malformed_schedule_reports_the_ncrontab_field() -> None:
    with pytest.raises(ScheduleError, match="minute field '61'") as raised:
        parse_schedule("0 61 * * * *")
    assert raised.value.field == "minute"


def test_a_malformed_timespan_reports_the_timespan() -> None:
    with pytest.raises(ScheduleError, match="TimeSpan '00:99:00'"):
        parse_schedule("00:99:00")


@pytest.mark.parametrize("text", ["", "   ", "every five minutes", "0 */5 * * *  *  *"])
def test_garbage_schedules_are_refused(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(text)


def test_interval_schedule_counts_from_the_given_instant() -> None:
    schedule = parse_schedule("01:30:00")
    start = datetime(2026, 1, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert schedule.next_after(start) == start + timedelta(hours=1, minutes=30)


def test_utc_is_the_default_and_iana_names_are_accepted() -> None:
    assert resolve_time_zone(None) is UTC
    assert resolve_time_zone("  ") is UTC
    assert resolve_time_zone("Europe/Amsterdam") == ZoneInfo("Europe/Amsterdam")


@pytest.mark.parametrize("name", ["Nowhere/City", "W. Europe Standard Time", "../etc/passwd"])
def test_unknown_time_zones_name_the_setting(name: str) -> None:
    with pytest.raises(TimeZoneError, match="WEBSITE_TIME_ZONE"):
        resolve_time_zone(name)


def test_a_schedule_runs_on_the_wall_clock_of_its_time_zone() -> None:
    schedule = parse_schedule("0 30 9 * * *", ZoneInfo("Europe/Amsterdam"))
    after = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert schedule.next_after(after) == datetime(2026, 1, 2, 8, 30, tzinfo=UTC)
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert schedule.next_after(summer) == datetime(2026, 7, 2, 7, 30, tzinfo=UTC)


def _walk(schedule: CronSchedule, start: datetime, count: int) -> list[str]:
    moments, moment = [], start
    for _ in range(count):
        found = schedule.next_after(moment)
        assert found is not None
        moments.append(found.astimezone(LOS_ANGELES).isoformat())
        moment = found
    return moments


def test_fall_back_runs_an_interval_schedule_through_the_repeated_hour() -> None:
    schedule = parse_schedule("0 */30 * * * *", LOS_ANGELES)
    assert isinstance(schedule, CronSchedule)
    start = datetime(2018, 11, 4, 0, 30, tzinfo=LOS_ANGELES)
    assert _walk(schedule, start, 6) == [
        "2018-11-04T01:00:00-07:00",
        "2018-11-04T01:30:00-07:00",
        "2018-11-04T01:00:00-08:00",
        "2018-11-04T01:30:00-08:00",
        "2018-11-04T02:00:00-08:00",
        "2018-11-04T02:30:00-08:00",
    ]


def test_fall_back_runs_a_point_in_time_schedule_once() -> None:
    schedule = parse_schedule("0 30 1 * * *", LOS_ANGELES)
    assert isinstance(schedule, CronSchedule)
    start = datetime(2018, 11, 2, 12, 0, tzinfo=LOS_ANGELES)
    assert _walk(schedule, start, 3) == [
        "2018-11-03T01:30:00-07:00",
        "2018-11-04T01:30:00-07:00",
        "2018-11-05T01:30:00-08:00",
    ]


def test_a_point_in_time_schedule_started_in_the_repeated_hour_waits_a_day() -> None:
    schedule = parse_schedule("0 30 1 * * *", LOS_ANGELES)
    second_pass = datetime(2018, 11, 4, 9, 29, tzinfo=UTC)  # 01:29 PST, after the fall back
    assert second_pass.astimezone(LOS_ANGELES).fold == 1
    found = schedule.next_after(second_pass)
    assert found is not None
    assert found.astimezone(LOS_ANGELES).isoformat() == "2018-11-05T01:30:00-08:00"


def test_spring_forward_runs_a_skipped_time_an_hour_later() -> None:
    schedule = parse_schedule("0 30 2 * * *", LOS_ANGELES)
    assert isinstance(schedule, CronSchedule)
    start = datetime(2018, 3, 10, 12, 0, tzinfo=LOS_ANGELES)
    assert _walk(schedule, start, 2) == [
        "2018-03-11T03:30:00-07:00",
        "2018-03-12T02:30:00-07:00",
    ]


def test_spring_forward_does_not_run_an_interval_schedule_twice() -> None:
    schedule = parse_schedule("0 */30 * * * *", LOS_ANGELES)
    assert isinstance(schedule, CronSchedule)
    start = datetime(2018, 3, 11, 1, 0, tzinfo=LOS_ANGELES)
    assert _walk(schedule, start, 4) == [
        "2018-03-11T01:30:00-08:00",
        "2018-03-11T03:00:00-07:00",
        "2018-03-11T03:30:00-07:00",
        "2018-03-11T04:00:00-07:00",
    ]


def test_sub_minute_schedules_are_frequent() -> None:
    # Like the host, count the occurrences in the minute after now (its end excluded).
    now = datetime(2026, 1, 1, 10, 0, 10, tzinfo=UTC)
    assert is_frequent(parse_schedule("*/1 * * * * *"), now)
    assert is_frequent(parse_schedule("0,30 * * * * *"), now)
    assert is_frequent(parse_schedule("00:00:30"), now)
    assert not is_frequent(parse_schedule("0 * * * * *"), now)
    assert not is_frequent(parse_schedule("00:01:00"), now)
    assert not is_frequent(parse_schedule("0 0 0 31 2 *"), now)


# --- properties -------------------------------------------------------------------------

ZONES = [ZoneInfo(name) for name in ("America/Los_Angeles", "Europe/London", "Australia/Lord_Howe")]


def _offset_changes(zone: ZoneInfo, first_year: int, last_year: int) -> list[datetime]:
    """Every instant the zone's UTC offset changes, found by a daily walk then bisection."""
    changes = []
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    while moment < end:
        later = moment + timedelta(days=1)
        if moment.astimezone(zone).utcoffset() != later.astimezone(zone).utcoffset():
            low, high = moment, later
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) // 2
                same = middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset()
                low, high = (middle, high) if same else (low, middle)
            changes.append(high)
        moment = later
    return changes


CHANGES = sorted({change for zone in ZONES for change in _offset_changes(zone, 2018, 2021)})
instants = st.one_of(
    st.datetimes(
        min_value=datetime(2015, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    # Most of the examples fall within hours of a daylight-saving change.
    st.builds(
        lambda change, shift: change + timedelta(seconds=shift),
        st.sampled_from(CHANGES),
        st.integers(-3 * 3600, 3 * 3600),
    ),
    st.builds(
        lambda change, shift: change + timedelta(seconds=shift),
        st.sampled_from(CHANGES),
        st.integers(-3 * 3600, 3 * 3600),
    ),
)
zoned_expressions = st.sampled_from(
    [
        "0 */30 * * * *",
        "0 0 * * * *",
        "0 30 1 * * *",
        "0 30 2 * * *",
        "0 15 1-3 * * *",
        "*/20 * 1,2 * * *",
        "0 0 2 * * Sun",
        "0 0 0 1 * *",
    ]
)


def _utc_offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    return instant.astimezone(zone).utcoffset() or timedelta(0)


@settings(max_examples=400, deadline=None)
@given(expression=zoned_expressions, zone=st.sampled_from(ZONES), instant=instants)
def test_zoned_occurrences_move_forward_and_keep_the_wall_clock(
    expression: str, zone: ZoneInfo, instant: datetime
) -> None:
    schedule = parse_schedule(expression, zone)
    assert isinstance(schedule, CronSchedule)
    found = schedule.next_after(instant)
    assert found is not None and found > instant
    following = schedule.next_after(found)
    assert following is not None and following > found
    wall = found.astimezone(zone).replace(tzinfo=None)
    if not schedule.crontab.is_interval:
        # A point-in-time schedule never repeats a wall time in the hour that repeats.
        following_wall = following.astimezone(zone).replace(tzinfo=None)
        assert following_wall != wall or following - found > timedelta(hours=20)
    if not schedule.crontab.matches(wall):
        # Only a wall time skipped by a spring-forward change may fire off the clock face,
        # and then it fires at the instant it would have had on the old offset.
        jump = _utc_offset(found, zone) - _utc_offset(found - timedelta(hours=3), zone)
        assert jump > timedelta(0)
        assert schedule.crontab.matches(wall - jump)


@settings(max_examples=200, deadline=None)
@given(instant=instants, expression=zoned_expressions)
def test_the_utc_shortcut_agrees_with_the_general_path(instant: datetime, expression: str) -> None:
    assert parse_schedule(expression).next_after(instant) == parse_schedule(
        expression, ZoneInfo("Etc/UTC")
    ).next_after(instant)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), st.text(st.sampled_from(list("0123456789:. -")))))
def test_garbage_schedules_raise_nothing_but_schedule_error(text: str) -> None:
    try:
        schedule = parse_schedule(text)
    except ScheduleError:
        return
    schedule.next_after(datetime(2026, 1, 1, tzinfo=UTC))
