"""Schedule status: its JSON shape, the status files, and the missed-run check at start-up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from devhost.timer.schedule import parse_schedule
from devhost.timer.status import (
    UNSET_TIME,
    ScheduleStatus,
    StatusFileError,
    StatusStore,
    reconcile,
)

pytestmark = pytest.mark.unit

HOURLY = parse_schedule("0 0 * * * *")
NOW = datetime(2026, 3, 10, 12, 20, 5, tzinfo=UTC)


def test_status_json_has_the_hosts_keys_and_offsets() -> None:
    status = ScheduleStatus(
        last=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
        next=datetime(2026, 3, 10, 13, 0, tzinfo=UTC),
        last_updated=datetime(2026, 3, 10, 12, 0, 0, 1500, tzinfo=UTC),
    )
    assert status.to_json(UTC) == {
        "Last": "2026-03-10T12:00:00+00:00",
        "Next": "2026-03-10T13:00:00+00:00",
        "LastUpdated": "2026-03-10T12:00:00.001500+00:00",
    }
    amsterdam = status.to_json(ZoneInfo("Europe/Amsterdam"))
    assert amsterdam["Next"] == "2026-03-10T14:00:00+01:00"
    assert ScheduleStatus.from_json(amsterdam) == status


def test_unrecorded_times_are_written_as_the_hosts_minimum_date() -> None:
    status = ScheduleStatus(last=None, next=NOW, last_updated=None)
    document = status.to_json(UTC)
    assert document["Last"] == UNSET_TIME == document["LastUpdated"]
    assert ScheduleStatus.from_json(document) == status


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ([], "JSON object"),
        ({"Last": 5, "Next": None}, "ISO 8601 string"),
        ({"Next": "tomorrow"}, "not an ISO 8601 time"),
    ],
)
def test_bad_status_documents_are_refused(document: object, fragment: str) -> None:
    with pytest.raises(StatusFileError, match=fragment):
        ScheduleStatus.from_json(document)


def test_a_time_without_offset_is_read_as_utc() -> None:
    status = ScheduleStatus.from_json({"Next": "2026-03-10T13:00:00"})
    assert status.next == datetime(2026, 3, 10, 13, tzinfo=UTC)


def test_a_new_timer_records_its_next_occurrence() -> None:
    result = reconcile(None, HOURLY, NOW)
    assert result.changed and not result.past_due
    assert result.status == ScheduleStatus(
        last=None, next=datetime(2026, 3, 10, 13, tzinfo=UTC), last_updated=NOW
    )


def test_a_missed_occurrence_is_past_due() -> None:
    last = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    stored = ScheduleStatus(last=last, next=last + timedelta(hours=1), last_updated=last)
    result = reconcile(stored, HOURLY, NOW)
    assert result.past_due
    assert not result.changed
    assert result.status == stored


def test_a_future_occurrence_is_not_past_due() -> None:
    last = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    stored = ScheduleStatus(last=last, next=last + timedelta(hours=1), last_updated=last)
    result = reconcile(stored, HOURLY, NOW)
    assert not result.past_due and not result.changed


def test_a_timer_that_never_ran_checks_from_last_updated() -> None:
    updated = datetime(2026, 3, 10, 7, 30, tzinfo=UTC)
    stored = ScheduleStatus(
        last=None, next=datetime(2026, 3, 10, 8, tzinfo=UTC), last_updated=updated
    )
    result = reconcile(stored, HOURLY, NOW)
    assert result.past_due and not result.changed


def test_a_changed_schedule_is_not_a_missed_run() -> None:
    last = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    # Recorded under a daily schedule; the timer is hourly now.
    stored = ScheduleStatus(last=last, next=last + timedelta(days=1), last_updated=last)
    result = reconcile(stored, HOURLY, NOW)
    assert not result.past_due
    assert result.changed
    assert result.status == ScheduleStatus(
        last=None, next=datetime(2026, 3, 10, 13, tzinfo=UTC), last_updated=NOW
    )


def test_a_changed_schedule_whose_next_time_is_ahead_keeps_it() -> None:
    daily = parse_schedule("0 0 18 * * *")
    last = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    stored = ScheduleStatus(last=last, next=last + timedelta(hours=1), last_updated=last)
    result = reconcile(stored, daily, NOW)
    assert not result.past_due and result.changed
    assert result.status.next == datetime(2026, 3, 10, 18, tzinfo=UTC)
    assert result.status.last_updated == last


def test_a_timespan_timer_missed_while_the_host_was_down() -> None:
    every_ten_minutes = parse_schedule("00:10:00")
    last = NOW - timedelta(hours=1)
    stored = ScheduleStatus(last=last, next=last + timedelta(minutes=10), last_updated=last)
    assert reconcile(stored, every_ten_minutes, NOW).past_due


def test_store_round_trips_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = StatusStore(tmp_path / "timers", UTC)
    assert store.load("nightly") is None
    status = ScheduleStatus(last=NOW, next=NOW + timedelta(hours=1), last_updated=NOW)
    store.save("nightly", status)
    store.save("nightly", status)
    assert store.load("nightly") == status
    assert [p.name for p in (tmp_path / "timers").iterdir()] == ["nightly.json"]
    document = json.loads((tmp_path / "timers" / "nightly.json").read_text(encoding="utf-8"))
    assert set(document) == {"Last", "Next", "LastUpdated"}


def test_store_keeps_function_names_inside_its_directory(tmp_path: Path) -> None:
    store = StatusStore(tmp_path / "timers", UTC)
    assert store.path("../../etc/cron").parent == tmp_path / "timers"


@pytest.mark.parametrize("content", ["{not json", '"a string"', '{"Next": "soon"}'])
def test_store_reports_unreadable_files_with_their_path(tmp_path: Path, content: str) -> None:
    store = StatusStore(tmp_path, UTC)
    store.path("broken").write_text(content, encoding="utf-8")
    with pytest.raises(StatusFileError, match="broken.json"):
        store.load("broken")
