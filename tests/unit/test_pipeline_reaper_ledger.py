"""The remote run ledger on SQLite: idempotent records, compare-and-set moves, settling, pruning."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shared.batch.engine import RunState, RunStatus
from shared.pipeline.run_ledger import (
    UNFINISHED,
    DocumentRunLedger,
    EntryStatus,
    RemoteRun,
    RunOwner,
    settle,
)
from tests.lakedata import ledger_at

pytestmark = pytest.mark.unit

T0 = dt.datetime(2024, 5, 1, 22, 0, tzinfo=dt.UTC)
OWNER = RunOwner("top:gold:merchant_daily", "top")


def _run(run_id: str = "101", at: dt.datetime = T0) -> RemoteRun:
    return RemoteRun.submitted(
        RunState("databricks", run_id, RunStatus.PENDING), "merchant_daily", OWNER, at
    )


def _move(
    ledger: DocumentRunLedger,
    expected: tuple[EntryStatus, ...],
    status: EntryStatus,
    at: dt.datetime = T0,
) -> bool:
    return ledger.move(
        "databricks", "101", expected, status, remote_status=None, by="test", note="", now=at
    )


@pytest.fixture
def ledger(tmp_path: Path) -> DocumentRunLedger:
    return ledger_at(tmp_path / "pipeline" / "state.sqlite")


def test_a_recorded_run_is_unfinished_with_its_owner(ledger: DocumentRunLedger) -> None:
    stored = ledger.record(_run())

    assert stored.status is EntryStatus.OPEN
    assert stored.owner == OWNER
    assert stored.submitted_at == T0
    assert stored.remote_status is RunStatus.PENDING
    assert ledger.unfinished() == [stored]


def test_recording_a_run_again_keeps_the_first_record(ledger: DocumentRunLedger) -> None:
    first = ledger.record(_run())
    _move(ledger, UNFINISHED, EntryStatus.FINISHED)

    again = ledger.record(_run(at=T0 + dt.timedelta(minutes=3)))  # a retried submit

    assert again.submitted_at == first.submitted_at
    assert again.status is EntryStatus.FINISHED  # a retry never reopens a closed run
    assert ledger.unfinished() == []


def test_a_move_happens_only_from_an_expected_status(ledger: DocumentRunLedger) -> None:
    ledger.record(_run())

    assert _move(ledger, (EntryStatus.OPEN,), EntryStatus.CANCELLING)
    assert not _move(ledger, (EntryStatus.OPEN,), EntryStatus.FINISHED)
    assert _move(ledger, (EntryStatus.CANCELLING,), EntryStatus.CANCELLED)
    entry = ledger.get("databricks", "101")
    assert entry is not None and entry.status is EntryStatus.CANCELLED
    assert entry.closed_by == "test"
    assert not _move(ledger, UNFINISHED, EntryStatus.FINISHED)


def test_moving_an_unknown_run_changes_nothing(ledger: DocumentRunLedger) -> None:
    assert not _move(ledger, UNFINISHED, EntryStatus.FINISHED)
    assert ledger.get("databricks", "101") is None


@pytest.mark.parametrize(
    ("entry", "remote", "expected"),
    [
        (EntryStatus.OPEN, RunStatus.SUCCEEDED, EntryStatus.FINISHED),
        (EntryStatus.OPEN, RunStatus.CANCELLED, EntryStatus.FINISHED),
        (EntryStatus.CANCELLING, RunStatus.CANCELLED, EntryStatus.CANCELLED),
        (EntryStatus.CANCELLING, RunStatus.SUCCEEDED, EntryStatus.FINISHED),
        (EntryStatus.FINISHED, RunStatus.SUCCEEDED, None),
        (EntryStatus.CANCELLED, RunStatus.CANCELLED, None),
    ],
)
def test_settling_a_run_that_ended(
    ledger: DocumentRunLedger, entry: EntryStatus, remote: RunStatus, expected: EntryStatus | None
) -> None:
    ledger.record(_run())
    if entry is not EntryStatus.OPEN:
        _move(ledger, UNFINISHED, entry)

    settled = settle(ledger, RunState("databricks", "101", remote), by="monitor", note="", now=T0)

    assert settled is expected
    stored = ledger.get("databricks", "101")
    assert stored is not None and stored.status is (expected or entry)


def test_settling_a_run_still_going_is_refused(ledger: DocumentRunLedger) -> None:
    with pytest.raises(ValueError, match="not over"):
        settle(ledger, RunState("databricks", "101", RunStatus.RUNNING), by="m", note="", now=T0)


def test_prune_forgets_only_old_closed_runs(ledger: DocumentRunLedger) -> None:
    for run_id in ("1", "2", "3"):
        ledger.record(_run(run_id))
    ledger.move(
        "databricks",
        "1",
        UNFINISHED,
        EntryStatus.FINISHED,
        remote_status=None,
        by="m",
        note="",
        now=T0,
    )
    ledger.move(
        "databricks",
        "2",
        UNFINISHED,
        EntryStatus.CANCELLED,
        remote_status=None,
        by="m",
        note="",
        now=T0 + dt.timedelta(days=40),
    )

    assert ledger.prune(T0 + dt.timedelta(days=30)) == 1

    assert ledger.get("databricks", "1") is None
    assert ledger.get("databricks", "2") is not None
    assert [r.run_id for r in ledger.unfinished()] == ["3"]  # open runs are never pruned


def test_unfinished_runs_come_oldest_first_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    ledger = ledger_at(path)
    ledger.record(_run("b", T0 + dt.timedelta(seconds=1)))
    ledger.record(_run("a", T0 + dt.timedelta(microseconds=500)))
    ledger.record(_run("c", T0))
    del ledger  # a restart: a new store over the same file

    reopened = ledger_at(path)

    assert [r.run_id for r in reopened.unfinished()] == ["c", "a", "b"]


def test_times_without_a_zone_are_refused(ledger: DocumentRunLedger) -> None:
    with pytest.raises(ValueError, match="time zone"):
        ledger.record(_run(at=dt.datetime(2024, 5, 1, 22, 0)))
