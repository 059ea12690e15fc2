"""Timer triggers end to end: a real devhost runs the `timers` fixture app on its schedules."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import StartDevhost
from tests.devhost_process import FIXTURE_APPS

pytestmark = pytest.mark.integration

NIGHTLY = "0 0 3 * * *"  # NIGHTLY_SCHEDULE in the fixture's local.settings.json


def runs(log: Path, function: str) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [run for run in map(json.loads, lines) if run["function"] == function]


def wait_for_runs(log: Path, function: str, count: int, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = runs(log, function)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"{function} ran {len(runs(log, function))} times, not {count}")


def test_a_timer_every_second_fires_on_each_second(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    host = start_devhost("timers", env={"TIMER_LOG": str(log)})
    found = wait_for_runs(log, "every_second", 4)
    times = [run["at"] for run in found]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(0.4 < gap < 1.8 for gap in gaps), gaps
    assert all(at % 1 < 0.5 for at in times), times  # on the second, not between
    assert all(run["past_due"] is False for run in found)
    # Sub-minute timers keep no schedule status, so the worker gets none, as in Azure.
    assert all(run["schedule_status"] == {} for run in found)
    assert found[0]["schedule"] == {"AdjustForDST": True}
    assert 'every_second: timer "*/1 * * * * *", next 20' in host.output()


def test_run_on_startup_fires_once_when_the_host_starts(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    host = start_devhost("timers", env={"TIMER_LOG": str(log)})
    [run] = wait_for_runs(log, "on_startup", 1, timeout=5)
    assert run["past_due"] is False
    next_new_year = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
    assert run["schedule_status"]["Next"] == next_new_year.isoformat()
    assert 'on_startup: timer "0 0 0 1 1 *"' in host.output()
    time.sleep(1.5)
    assert len(runs(log, "on_startup")) == 1


def test_a_run_missed_while_the_host_was_down_runs_past_due(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    data_dir = tmp_path / "data"
    status_path = data_dir / "timers" / "nightly.json"
    first = start_devhost("timers", env={"TIMER_LOG": str(log)}, data_dir=data_dir)
    assert status_path.exists()
    assert first.stop() == 0
    assert runs(log, "nightly") == []

    # Pretend the host went down two days ago, after its last nightly run.
    recorded = json.loads(status_path.read_text(encoding="utf-8"))
    upcoming = datetime.fromisoformat(recorded["Next"])
    missed, last = upcoming - timedelta(days=1), upcoming - timedelta(days=2)
    status_path.write_text(
        json.dumps(
            {"Last": last.isoformat(), "Next": missed.isoformat(), "LastUpdated": last.isoformat()}
        ),
        encoding="utf-8",
    )

    second = start_devhost("timers", env={"TIMER_LOG": str(log)}, data_dir=data_dir)
    [run] = wait_for_runs(log, "nightly", 1, timeout=5)
    assert run["past_due"] is True
    assert run["schedule_status"]["Last"] == last.isoformat()
    assert run["schedule_status"]["Next"] == missed.isoformat()
    assert "nightly is past due" in second.output()

    def saved_next() -> datetime:
        return datetime.fromisoformat(json.loads(status_path.read_text("utf-8"))["Next"])

    deadline = time.monotonic() + 5
    while saved_next() != upcoming and time.monotonic() < deadline:
        time.sleep(0.05)
    assert saved_next() == upcoming
    time.sleep(1)
    assert len(runs(log, "nightly")) == 1


def test_a_failing_timer_keeps_being_scheduled(start_devhost: StartDevhost, tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    host = start_devhost("timers", env={"TIMER_LOG": str(log)})
    wait_for_runs(log, "failing", 3)
    assert requests.get(host.url("/admin/host/status"), timeout=5).json()["state"] == "Running"
    assert "function failing failed" in host.output()
    assert "the failing timer fails on purpose" in host.output()
    assert host.stop() == 0


def test_an_invalid_schedule_stops_the_host_naming_the_function(
    start_devhost: StartDevhost,
) -> None:
    host = start_devhost(FIXTURE_APPS / "timers" / "invalid", wait=False)
    assert host.process.wait(timeout=30) == 2
    output = host.output()
    assert "function 'broken_timer', binding 'timer' (timerTrigger)" in output
    assert "invalid schedule '0 0 0 1 13 *'" in output
    assert "month field '13'" in output
