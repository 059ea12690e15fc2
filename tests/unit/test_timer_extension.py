"""The timer extension in process: configuration errors, scheduling, status, stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from devhost.appsettings import AppSettings
from devhost.extension import HostContext
from devhost.hostconfig import HostConfig
from devhost.indexing import FunctionSpec, IndexingError, index_app
from devhost.invocation import Invoker
from devhost.keys import HostKeys
from devhost.timer.extension import TimerExtension
from devhost.timer.schedule import parse_schedule
from devhost.timer.status import UNSET_TIME, ScheduleStatus, StatusStore

pytestmark = pytest.mark.unit

DAILY = "0 0 3 * * *"


@pytest.fixture
def invoker() -> Iterator[Invoker]:
    invoker = Invoker(max_threads=4)
    yield invoker
    invoker.close()


def make_context(tmp_path: Path, invoker: Invoker, **settings: str) -> HostContext:
    return HostContext(
        script_root=tmp_path,
        data_dir=tmp_path / "data",
        settings=AppSettings(settings, environ={}),
        host_config=HostConfig(),
        invoker=invoker,
        keys=HostKeys(master="master", host={"default": "host"}),
        base_url="http://127.0.0.1:0",
        log=logging.getLogger("devhost.test"),
    )


def timer_app(handler: Any, **trigger: Any) -> list[FunctionSpec]:
    """One timer function named `tick` whose binding is `timer`."""
    app = func.FunctionApp()
    app.function_name("tick")(app.timer_trigger(arg_name="timer", **trigger)(handler))
    return index_app(app, AppSettings({}, environ={}))


def store(tmp_path: Path) -> StatusStore:
    return StatusStore(tmp_path / "data" / "timers", UTC)


def delivered(requests: list[func.TimerRequest]) -> list[TimerRequest]:
    """The requests the functions got, as the worker's concrete TimerRequest."""
    assert all(isinstance(request, TimerRequest) for request in requests)
    return [request for request in requests if isinstance(request, TimerRequest)]


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def test_an_invalid_schedule_names_the_function_and_binding(
    tmp_path: Path, invoker: Invoker
) -> None:
    def tick(timer: func.TimerRequest) -> None:
        return None

    functions = timer_app(tick, schedule="0 61 * * * *")
    with pytest.raises(IndexingError) as raised:
        TimerExtension(make_context(tmp_path, invoker), functions)
    message = str(raised.value)
    assert "function 'tick', binding 'timer' (timerTrigger)" in message
    assert "invalid schedule '0 61 * * * *'" in message
    assert "minute field '61'" in message


def test_an_unknown_time_zone_fails_only_apps_with_timers(tmp_path: Path, invoker: Invoker) -> None:
    def tick(timer: func.TimerRequest) -> None:
        return None

    context = make_context(tmp_path, invoker, WEBSITE_TIME_ZONE="Mars/Olympus_Mons")
    with pytest.raises(IndexingError, match="WEBSITE_TIME_ZONE='Mars/Olympus_Mons'.*"):
        TimerExtension(context, timer_app(tick, schedule=DAILY))
    assert TimerExtension(context, []).describe() == []


def test_run_on_startup_must_be_a_boolean(tmp_path: Path, invoker: Invoker) -> None:
    def tick(timer: func.TimerRequest) -> None:
        return None

    functions = timer_app(tick, schedule=DAILY, run_on_startup="sometimes")
    with pytest.raises(IndexingError, match="runOnStartup must be true or false"):
        TimerExtension(make_context(tmp_path, invoker), functions)


def test_describe_shows_the_schedule_and_next_run_in_utc(tmp_path: Path, invoker: Invoker) -> None:
    def tick(timer: func.TimerRequest) -> None:
        return None

    extension = TimerExtension(
        make_context(tmp_path, invoker), timer_app(tick, schedule="0 */5 * * * *")
    )
    [line] = extension.describe()
    assert line.startswith('tick: timer "0 */5 * * * *", next 20')
    next_run = datetime.strptime(line.rsplit(" ", 1)[1], "%Y-%m-%dT%H:%M:%SZ")
    assert next_run.minute % 5 == 0 and next_run.second == 0


async def test_runs_repeat_and_never_overlap(tmp_path: Path, invoker: Invoker) -> None:
    runs: list[tuple[float, float]] = []
    requests: list[func.TimerRequest] = []

    async def tick(timer: func.TimerRequest) -> None:
        started = time.monotonic()
        requests.append(timer)
        await asyncio.sleep(0.3)  # longer than the 0.2 s interval
        runs.append((started, time.monotonic()))

    extension = TimerExtension(
        make_context(tmp_path, invoker), timer_app(tick, schedule="00:00:00.2")
    )
    await extension.start()
    await wait_for(lambda: len(runs) >= 3)
    await extension.stop()
    assert await invoker.drain(5)
    for (_, previous_end), (next_start, _) in zip(runs, runs[1:], strict=False):
        assert next_start >= previous_end
    assert all(not r.past_due for r in delivered(requests))
    # A timer that fires more than once a minute keeps no status, as in Azure.
    assert all(r.schedule_status == {} for r in delivered(requests))
    assert delivered(requests)[0].schedule == {"AdjustForDST": False}
    assert not (tmp_path / "data" / "timers").exists()


async def test_a_failing_function_keeps_its_schedule(
    tmp_path: Path, invoker: Invoker, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[float] = []

    def tick(timer: func.TimerRequest) -> None:
        attempts.append(time.monotonic())
        raise RuntimeError("boom")

    extension = TimerExtension(
        make_context(tmp_path, invoker), timer_app(tick, schedule="00:00:00.1")
    )
    with caplog.at_level(logging.ERROR, logger="devhost.invocation"):
        await extension.start()
        await wait_for(lambda: len(attempts) >= 3)
        await extension.stop()
    assert await invoker.drain(5)
    assert "function tick failed" in caplog.text


async def test_stop_wakes_sleeping_timers(tmp_path: Path, invoker: Invoker) -> None:
    def tick(timer: func.TimerRequest) -> None:
        return None

    extension = TimerExtension(make_context(tmp_path, invoker), timer_app(tick, schedule=DAILY))
    await extension.start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(extension.stop(), 1)
    [timer] = extension.timers
    assert timer.task is not None and timer.task.done()


async def test_stop_lets_a_running_invocation_finish(tmp_path: Path, invoker: Invoker) -> None:
    started = asyncio.Event()
    finished: list[bool] = []

    async def tick(timer: func.TimerRequest) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(True)

    extension = TimerExtension(
        make_context(tmp_path, invoker),
        timer_app(tick, schedule="0 0 0 1 1 *", run_on_startup=True),
    )
    await extension.start()
    await asyncio.wait_for(started.wait(), 5)
    before = time.monotonic()
    await extension.stop()
    assert time.monotonic() - before < 0.2
    assert not finished
    assert await invoker.drain(5)
    assert finished == [True]
    saved = store(tmp_path).load("tick")
    assert saved is not None and saved.last is not None
    assert datetime.now(UTC) - saved.last < timedelta(seconds=5)


async def test_run_on_startup_passes_the_schedule_status(tmp_path: Path, invoker: Invoker) -> None:
    requests: list[func.TimerRequest] = []

    def tick(timer: func.TimerRequest) -> None:  # a sync function: runs on the thread pool
        requests.append(timer)

    extension = TimerExtension(
        make_context(tmp_path, invoker),
        timer_app(tick, schedule="0 0 0 1 1 *", run_on_startup=True),
    )
    await extension.start()
    assert "runOnStartup: running now" in extension.describe()[0]

    def ran_and_recorded() -> bool:
        saved = store(tmp_path).load("tick")
        return bool(requests) and saved is not None and saved.last is not None

    await wait_for(ran_and_recorded)
    await extension.stop()
    [request] = delivered(requests)
    assert request.past_due is False
    assert request.schedule == {"AdjustForDST": True}
    assert request.schedule_status["Last"] == UNSET_TIME
    next_new_year = datetime(datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
    assert request.schedule_status["Next"] == next_new_year.isoformat()
    saved = store(tmp_path).load("tick")
    assert saved is not None and saved.next == next_new_year


def _missed(expression: str) -> ScheduleStatus:
    """A status recorded by a host that went down before its last Next came."""
    schedule = parse_schedule(expression)
    upcoming = schedule.next_after(datetime.now(UTC))
    assert upcoming is not None
    missed = upcoming - timedelta(days=1)
    return ScheduleStatus(last=missed - timedelta(days=1), next=missed, last_updated=None)


async def test_a_missed_run_runs_once_at_start_with_past_due(
    tmp_path: Path, invoker: Invoker
) -> None:
    requests: list[func.TimerRequest] = []

    def tick(timer: func.TimerRequest) -> None:
        requests.append(timer)

    missed = _missed(DAILY)
    store(tmp_path).save("tick", missed)
    extension = TimerExtension(
        make_context(tmp_path, invoker), timer_app(tick, schedule=DAILY, run_on_startup=True)
    )
    await extension.start()
    assert "past due since" in extension.describe()[0]
    await wait_for(lambda: len(requests) == 1)
    await asyncio.sleep(0.3)
    await extension.stop()
    [request] = delivered(requests)  # past due takes the place of runOnStartup, as in Azure
    assert request.past_due is True
    assert missed.next is not None
    assert request.schedule_status["Next"] == missed.next.isoformat()
    saved = store(tmp_path).load("tick")
    assert saved is not None and saved.next is not None
    assert saved.next > datetime.now(UTC)


async def test_a_changed_schedule_is_not_run_as_missed(tmp_path: Path, invoker: Invoker) -> None:
    requests: list[func.TimerRequest] = []

    def tick(timer: func.TimerRequest) -> None:
        requests.append(timer)

    store(tmp_path).save("tick", _missed("0 0 4 * * *"))
    extension = TimerExtension(make_context(tmp_path, invoker), timer_app(tick, schedule=DAILY))
    await extension.start()
    await asyncio.sleep(0.3)
    await extension.stop()
    assert requests == []
    saved = store(tmp_path).load("tick")
    assert saved is not None and saved.last is None
    assert saved.next == parse_schedule(DAILY).next_after(datetime.now(UTC))


async def test_an_unreadable_status_file_is_reported_and_replaced(
    tmp_path: Path, invoker: Invoker, caplog: pytest.LogCaptureFixture
) -> None:
    def tick(timer: func.TimerRequest) -> None:
        return None

    path = store(tmp_path).path("tick")
    path.parent.mkdir(parents=True)
    path.write_text("{ not json", encoding="utf-8")
    extension = TimerExtension(make_context(tmp_path, invoker), timer_app(tick, schedule=DAILY))
    with caplog.at_level(logging.WARNING, logger="devhost.test"):
        await extension.start()
    await extension.stop()
    assert "ignoring its status file" in caplog.text and "tick.json" in caplog.text
    assert store(tmp_path).load("tick") is not None


async def test_use_monitor_false_keeps_no_status(tmp_path: Path, invoker: Invoker) -> None:
    requests: list[func.TimerRequest] = []

    def tick(timer: func.TimerRequest) -> None:
        requests.append(timer)

    extension = TimerExtension(
        make_context(tmp_path, invoker),
        timer_app(tick, schedule=DAILY, run_on_startup=True, use_monitor=False),
    )
    await extension.start()
    await wait_for(lambda: len(requests) == 1)
    await extension.stop()
    assert await invoker.drain(5)
    assert delivered(requests)[0].schedule_status == {}
    assert not (tmp_path / "data" / "timers").exists()
