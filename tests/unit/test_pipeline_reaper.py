"""The run reaper: orphaned remote runs are cancelled once, watched ones are left alone; and the
medallion pipeline records the runs it submits and closes the ones its monitor sees end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from shared.batch.engine import RunState, RunStatus, SqlJob
from shared.config import REAPER_SCHEDULE, SettingsError, reaper_schedule
from shared.pipeline.lake import Lake
from shared.pipeline.reaper import (
    DurableStatuses,
    Outcome,
    RunReaper,
    StatusLookupFailed,
)
from shared.pipeline.run_ledger import (
    UNFINISHED,
    DocumentRunLedger,
    EntryStatus,
    RemoteRun,
    RunOwner,
)
from shared.pipeline.service import MedallionPipeline
from tests.fakes.engine import FakeRemoteEngine
from tests.lakedata import ledger_at, state_at

pytestmark = pytest.mark.unit

T0 = dt.datetime(2024, 5, 1, 22, 0, tzinfo=dt.UTC)
TOP = "top-1"
CHILD = f"{TOP}:gold:merchant_daily"
OWNER = RunOwner(CHILD, TOP)


class FakeStatuses:
    """Runtime statuses by instance id; a missing id is an instance that does not exist."""

    def __init__(self, statuses: dict[str, str], failing: frozenset[str] = frozenset()) -> None:
        self.statuses = statuses
        self.failing = failing
        self.asked: list[str] = []

    async def runtime_status(self, instance_id: str) -> str | None:
        self.asked.append(instance_id)
        if instance_id in self.failing:
            raise StatusLookupFailed(f"status of {instance_id}: connection refused")
        return self.statuses.get(instance_id)


@pytest.fixture
def ledger(tmp_path: Path) -> DocumentRunLedger:
    return ledger_at(tmp_path / "state.sqlite")


@pytest.fixture
def engine() -> FakeRemoteEngine:
    return FakeRemoteEngine()


@pytest.fixture
def reaper(ledger: DocumentRunLedger, engine: FakeRemoteEngine) -> RunReaper:
    return RunReaper(ledger, engine, clock=lambda: T0 + dt.timedelta(minutes=5))


def _submitted(
    engine: FakeRemoteEngine,
    ledger: DocumentRunLedger,
    model: str = "merchant_daily",
    owner: RunOwner = OWNER,
) -> RemoteRun:
    state = engine.submit(SqlJob(model, "SELECT 1", {}, "gold", run_key=owner.instance_id))
    return ledger.record(RemoteRun.submitted(state, model, owner, T0))


def _entry(ledger: DocumentRunLedger, run: RemoteRun) -> RemoteRun:
    entry = ledger.get(run.engine, run.run_id)
    assert entry is not None
    return entry


async def test_a_run_whose_top_level_run_was_terminated_is_cancelled(
    reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    run = _submitted(engine, ledger)
    # A terminated parent leaves its sub-orchestrations running, watching nothing useful.
    statuses = FakeStatuses({CHILD: "Running", TOP: "Terminated"})

    report = await reaper.sweep(statuses)

    assert [r.outcome for r in report.runs] == [Outcome.CANCELLED]
    assert f"parent {TOP} is Terminated" in report.runs[0].detail
    assert engine.cancels() == [run.run_id]
    entry = _entry(ledger, run)
    assert (entry.status, entry.remote_status, entry.closed_by) == (
        EntryStatus.CANCELLED,
        RunStatus.CANCELLED,
        "reaper",
    )
    assert report.to_json()["cancelled"] == 1


@pytest.mark.parametrize(
    ("child", "top"),
    [
        ("Terminated", "Running"),
        ("Failed", "Running"),
        ("Completed", "Completed"),  # it gave up on the run (cancel polls ran out)
        ("Canceled", "Running"),
        ("Running", "Failed"),
        (None, "Running"),  # purged
        ("Running", None),
    ],
)
async def test_runs_no_active_orchestration_watches_are_cancelled(
    reaper: RunReaper,
    ledger: DocumentRunLedger,
    engine: FakeRemoteEngine,
    child: str | None,
    top: str | None,
) -> None:
    run = _submitted(engine, ledger)
    known = {k: v for k, v in {CHILD: child, TOP: top}.items() if v is not None}

    report = await reaper.sweep(FakeStatuses(known))

    assert report.runs[0].outcome is Outcome.CANCELLED
    assert engine.cancels() == [run.run_id]


@pytest.mark.parametrize("status", ["Pending", "Running", "Suspended", "ContinuedAsNew"])
async def test_runs_an_active_orchestration_watches_are_left_alone(
    reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine, status: str
) -> None:
    run = _submitted(engine, ledger)

    report = await reaper.sweep(FakeStatuses({CHILD: status, TOP: "Running"}))

    assert [r.outcome for r in report.runs] == [Outcome.WATCHED]
    assert not report.acted
    assert [call for call, _ in engine.calls] == ["submit"]  # the engine was not even asked
    assert _entry(ledger, run).status is EntryStatus.OPEN


async def test_sweeping_twice_cancels_once(
    reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    _submitted(engine, ledger)
    statuses = FakeStatuses({CHILD: "Terminated", TOP: "Terminated"})

    await reaper.sweep(statuses)
    second = await reaper.sweep(statuses)

    assert second.runs == ()
    assert len(engine.cancels()) == 1


async def test_a_run_that_already_ended_is_closed_not_cancelled(
    reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    run = _submitted(engine, ledger)
    engine.finish(run.run_id, RunStatus.SUCCEEDED)

    report = await reaper.sweep(FakeStatuses({CHILD: "Terminated", TOP: "Terminated"}))

    assert report.runs[0].outcome is Outcome.CLOSED
    assert "already ended succeeded" in report.runs[0].detail
    assert engine.cancels() == []
    entry = _entry(ledger, run)
    assert (entry.status, entry.remote_status) == (EntryStatus.FINISHED, RunStatus.SUCCEEDED)


async def test_a_slow_cancel_is_followed_up_by_the_next_sweep(
    reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    run = _submitted(engine, ledger)
    engine.slow_cancel = True

    first = await reaper.sweep(FakeStatuses({CHILD: "Terminated", TOP: "Terminated"}))
    assert first.runs[0].outcome is Outcome.CANCELLING
    assert _entry(ledger, run).status is EntryStatus.CANCELLING

    lookups = FakeStatuses({})  # the instances were purged meanwhile: it does not matter now
    second = await reaper.sweep(lookups)

    assert second.runs[0].outcome is Outcome.CANCELLED
    assert lookups.asked == []
    assert _entry(ledger, run).status is EntryStatus.CANCELLED


async def test_the_monitor_seeing_the_cancel_land_closes_it_as_cancelled(
    tmp_path: Path, reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    run = _submitted(engine, ledger)
    engine.slow_cancel = True
    await reaper.sweep(FakeStatuses({CHILD: "Running", TOP: "Terminated"}))
    pipeline = MedallionPipeline.build(
        Lake(str(tmp_path / "lake")),
        state_at(tmp_path / "s.sqlite"),
        engine,
        runs=ledger,
    )

    assert pipeline.gold_state(run.run_id).status == "cancelled"  # the child's next poll

    entry = _entry(ledger, run)
    assert (entry.status, entry.closed_by) == (EntryStatus.CANCELLED, "monitor")
    assert f"parent {TOP} is Terminated" in entry.note  # why it was cancelled is kept
    assert (await reaper.sweep(FakeStatuses({}))).runs == ()


class RacingEngine(FakeRemoteEngine):
    """The run's monitor sees it end just after the reaper asked where it is."""

    def __init__(self, ledger: DocumentRunLedger) -> None:
        super().__init__()
        self.ledger = ledger

    def state(self, run_id: str) -> RunState:
        answer = super().state(run_id)
        self.ledger.move(
            self.name,
            run_id,
            UNFINISHED,
            EntryStatus.FINISHED,
            remote_status=RunStatus.SUCCEEDED,
            by="monitor",
            note="",
            now=T0,
        )
        return answer


async def test_a_run_its_monitor_closes_meanwhile_is_not_cancelled(
    ledger: DocumentRunLedger,
) -> None:
    engine = RacingEngine(ledger)
    run = _submitted(engine, ledger)

    reaper = RunReaper(ledger, engine, clock=lambda: T0 + dt.timedelta(minutes=5))
    report = await reaper.sweep(FakeStatuses({CHILD: "Terminated"}))

    assert report.runs[0].outcome is Outcome.CLOSED
    assert engine.cancels() == []
    assert _entry(ledger, run).closed_by == "monitor"


async def test_a_run_the_engine_no_longer_knows_is_closed(
    reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    run = _submitted(engine, ledger)
    del engine.runs[run.run_id]

    report = await reaper.sweep(FakeStatuses({}))

    assert report.runs[0].outcome is Outcome.CLOSED
    assert _entry(ledger, run).status is EntryStatus.FINISHED


async def test_engine_errors_leave_the_run_for_the_next_sweep(
    reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    run = _submitted(engine, ledger)
    statuses = FakeStatuses({CHILD: "Terminated", TOP: "Terminated"})
    engine.fail_next = 1

    first = await reaper.sweep(statuses)
    assert first.runs[0].outcome is Outcome.ERROR
    assert "unavailable" in first.runs[0].detail
    assert _entry(ledger, run).status is EntryStatus.OPEN

    second = await reaper.sweep(statuses)
    assert second.runs[0].outcome is Outcome.CANCELLED


async def test_a_failed_status_lookup_skips_only_the_runs_it_concerns(
    reaper: RunReaper, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    unknown = _submitted(engine, ledger, owner=RunOwner("other:gold:item_pairs", "other"))
    orphan = _submitted(engine, ledger)
    statuses = FakeStatuses(
        {CHILD: "Running", TOP: "Terminated", "other": "Running"},
        failing=frozenset({"other:gold:item_pairs"}),
    )

    report = await reaper.sweep(statuses)

    outcomes = {r.run.run_id: r.outcome for r in report.runs}
    assert outcomes == {unknown.run_id: Outcome.ERROR, orphan.run_id: Outcome.CANCELLED}
    assert _entry(ledger, unknown).status is EntryStatus.OPEN


async def test_runs_of_another_engine_are_skipped(
    reaper: RunReaper, ledger: DocumentRunLedger
) -> None:
    other = FakeRemoteEngine("synapse")
    run = _submitted(other, ledger)

    report = await reaper.sweep(FakeStatuses({}))

    assert report.runs[0].outcome is Outcome.SKIPPED
    assert "recorded by engine synapse" in report.runs[0].detail
    assert _entry(ledger, run).status is EntryStatus.OPEN


async def test_closed_runs_are_pruned_after_the_retention(
    ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    _submitted(engine, ledger)
    statuses = FakeStatuses({})
    now = [T0 + dt.timedelta(minutes=1)]
    reaper = RunReaper(ledger, engine, clock=lambda: now[0], retention=dt.timedelta(days=30))
    await reaper.sweep(statuses)

    now[0] = T0 + dt.timedelta(days=29)
    assert (await reaper.sweep(statuses)).pruned == 0
    now[0] = T0 + dt.timedelta(days=31)
    assert (await reaper.sweep(statuses)).pruned == 1


# The pipeline's side: what it records, and when it closes the record.


@pytest.fixture
def pipeline(
    tmp_path: Path, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> MedallionPipeline:
    return MedallionPipeline.build(
        Lake(str(tmp_path / "lake")),
        state_at(tmp_path / "s.sqlite"),
        engine,
        runs=ledger,
    )


def test_a_submitted_remote_run_is_recorded_under_its_orchestration(
    pipeline: MedallionPipeline, ledger: DocumentRunLedger
) -> None:
    submission = pipeline.submit_gold("merchant_daily", TOP, RunOwner(CHILD, TOP))
    pipeline.submit_gold("merchant_daily", TOP, RunOwner(CHILD, TOP))  # the activity retried

    [entry] = ledger.unfinished()
    assert entry.run_id == submission.run.run_id
    assert (entry.engine, entry.model, entry.owner) == (
        "fake-remote",
        "merchant_daily",
        RunOwner(CHILD, TOP),
    )
    assert entry.submitted_at.tzinfo is not None


def test_the_monitor_closes_the_record_when_the_run_ends(
    pipeline: MedallionPipeline, ledger: DocumentRunLedger, engine: FakeRemoteEngine
) -> None:
    run_id = pipeline.submit_gold("merchant_daily", TOP, RunOwner(CHILD, TOP)).run.run_id

    assert pipeline.gold_state(run_id).status == "pending"
    assert len(ledger.unfinished()) == 1
    engine.finish(run_id, RunStatus.FAILED)
    assert pipeline.gold_state(run_id).status == "failed"

    entry = ledger.get("fake-remote", run_id)
    assert entry is not None
    assert (entry.status, entry.remote_status, entry.closed_by) == (
        EntryStatus.FINISHED,
        RunStatus.FAILED,
        "monitor",
    )


def test_a_run_cancelled_by_its_own_orchestration_is_finished(
    pipeline: MedallionPipeline, ledger: DocumentRunLedger
) -> None:
    run_id = pipeline.submit_gold("merchant_daily", TOP, RunOwner(CHILD, TOP)).run.run_id

    assert pipeline.cancel_gold(run_id).status == "cancelled"

    entry = ledger.get("fake-remote", run_id)
    assert entry is not None and entry.status is EntryStatus.FINISHED


def test_local_runs_that_end_inside_submit_are_not_recorded(
    tmp_path: Path, ledger: DocumentRunLedger
) -> None:
    from shared.batch.duckdb_engine import DuckDBEngine

    local = MedallionPipeline.build(
        Lake(str(tmp_path / "lake")),
        state_at(tmp_path / "s.sqlite"),
        DuckDBEngine(threads=1),
        runs=ledger,
    )

    submission = local.submit_gold("merchant_daily", TOP, RunOwner(CHILD, TOP))

    assert submission.run.status == "succeeded"
    assert ledger.unfinished() == []


# The Durable client adapter and the schedule setting.


class SdkClient:
    """Answers as DurableOrchestrationClient.get_status does, from the HTTP API's bodies."""

    def __init__(self, bodies: dict[str, Any], error: Callable[[], Exception] | None = None):
        self.bodies = bodies
        self.error = error

    async def get_status(self, instance_id: str) -> DurableOrchestrationStatus:
        if self.error is not None:
            raise self.error()
        return DurableOrchestrationStatus.from_json(self.bodies.get(instance_id, ""))


async def test_durable_statuses_read_the_sdk_status() -> None:
    running = {
        "name": "medallion",
        "instanceId": TOP,
        "runtimeStatus": "Terminated",
        "createdTime": "2024-05-01T22:00:00Z",
        "lastUpdatedTime": "2024-05-01T22:01:00Z",
    }
    statuses = DurableStatuses(SdkClient({TOP: running}))

    assert await statuses.runtime_status(TOP) == "Terminated"
    assert await statuses.runtime_status("purged") is None  # a 404 has an empty body


async def test_durable_status_errors_are_typed() -> None:
    failing = DurableStatuses(SdkClient({}, lambda: Exception("unexpected status code 503")))
    with pytest.raises(StatusLookupFailed, match="503"):
        await failing.runtime_status(TOP)


def test_the_reaper_schedule_defaults_to_every_minute() -> None:
    assert reaper_schedule({}) == REAPER_SCHEDULE == "0 * * * * *"
    assert reaper_schedule({"PIPELINE_REAPER_SCHEDULE": " */5  * * * * * "}) == "*/5 * * * * *"


@pytest.mark.parametrize("bad", ["* * * * *", "0 * * * * * *", "%PIPELINE_REAPER_SCHEDULE%"])
def test_a_bad_reaper_schedule_names_the_setting(bad: str) -> None:
    with pytest.raises(SettingsError, match="PIPELINE_REAPER_SCHEDULE"):
        reaper_schedule({"PIPELINE_REAPER_SCHEDULE": bad})


def test_the_reaper_timer_uses_the_schedule(platform_env: Path) -> None:
    from devhost.indexing import load_app
    from tests.devhost_process import PROJECT_ROOT

    app = load_app(PROJECT_ROOT)  # a fresh import: get_functions() may run once per app
    [reaper] = [f for f in app.get_functions() if f.get_function_name() == "pipeline_run_reaper"]
    [timer] = [b for b in reaper.get_bindings() if b.type == "timerTrigger"]
    assert timer.schedule == reaper_schedule()
