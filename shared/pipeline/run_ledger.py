"""The ledger of remote batch runs: who submitted each one, and whether anyone still watches it.

The submit activity opens an entry, the monitor closes it when it sees the run end, and the
reaper (`shared.pipeline.reaper`) cancels the runs whose orchestration went away in between.
Every change is a compare-and-set on the entry's status, so two writers never both move it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from shared.batch.engine import RunState, RunStatus
from shared.pipeline.state import open_sqlite


class EntryStatus(StrEnum):
    OPEN = "open"  # submitted; its orchestration watches it
    CANCELLING = "cancelling"  # orphaned; the reaper asked the engine to stop it
    FINISHED = "finished"  # seen ending (succeeded, failed, or cancelled by its orchestration)
    CANCELLED = "cancelled"  # orphaned, and stopped by the reaper

    @property
    def closed(self) -> bool:
        return self in (EntryStatus.FINISHED, EntryStatus.CANCELLED)


UNFINISHED = (EntryStatus.OPEN, EntryStatus.CANCELLING)


@dataclass(frozen=True)
class RunOwner:
    """The orchestration instance that submitted a run, and its parent (the top-level run)."""

    instance_id: str
    parent_instance_id: str | None = None


@dataclass(frozen=True)
class RemoteRun:
    """One run in a remote engine and what the platform knows of it."""

    engine: str
    run_id: str
    model: str
    owner: RunOwner
    submitted_at: dt.datetime
    status: EntryStatus = EntryStatus.OPEN
    remote_status: RunStatus | None = None  # the engine's last answer
    updated_at: dt.datetime | None = None
    closed_by: str | None = None  # "monitor" or "reaper"
    note: str = ""

    @classmethod
    def submitted(cls, state: RunState, model: str, owner: RunOwner, now: dt.datetime) -> RemoteRun:
        return cls(state.engine, state.run_id, model, owner, now, remote_status=state.status)


class RunLedger(Protocol):
    """Remote runs keyed by (engine, run_id)."""

    def record(self, run: RemoteRun) -> RemoteRun:
        """Add the run unless it is already there (a retried submit); answers the stored one."""
        ...

    def get(self, engine: str, run_id: str) -> RemoteRun | None: ...

    def unfinished(self) -> list[RemoteRun]:
        """Runs still open or being cancelled, oldest first."""
        ...

    def move(
        self,
        engine: str,
        run_id: str,
        expected: Iterable[EntryStatus],
        status: EntryStatus,
        *,
        remote_status: RunStatus | None,
        by: str,
        note: str | None,
        now: dt.datetime,
    ) -> bool:
        """Set the status if it is one of `expected`; False when another writer moved it first.
        A `note` of None keeps the entry's note."""
        ...

    def prune(self, closed_before: dt.datetime) -> int:
        """Forget closed runs last changed before this time; answers how many."""
        ...


_COLUMNS = (
    "engine, run_id, model, instance_id, parent_instance_id, submitted_at, status,"
    " remote_status, updated_at, closed_by, note"
)


def _time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; the ledger keeps UTC times")
    # A fixed width keeps the text order the time order (the prune compares as text).
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


class SqliteRunLedger:
    """The embedded adapter: a `remote_runs` table beside the pipeline state, WAL mode."""

    def __init__(self, path: Path) -> None:
        self._connection = open_sqlite(path)
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS remote_runs (engine TEXT NOT NULL, run_id TEXT NOT NULL,"
            " model TEXT NOT NULL, instance_id TEXT NOT NULL, parent_instance_id TEXT,"
            " submitted_at TEXT NOT NULL, status TEXT NOT NULL, remote_status TEXT,"
            " updated_at TEXT NOT NULL, closed_by TEXT, note TEXT NOT NULL DEFAULT '',"
            " PRIMARY KEY (engine, run_id))"
        )
        self._connection.execute(
            "CREATE INDEX IF NOT EXISTS remote_runs_status ON remote_runs (status, submitted_at)"
        )
        self._lock = threading.Lock()

    def record(self, run: RemoteRun) -> RemoteRun:
        updated = run.updated_at or run.submitted_at
        with self._lock:
            self._connection.execute(
                f"INSERT OR IGNORE INTO remote_runs ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.engine,
                    run.run_id,
                    run.model,
                    run.owner.instance_id,
                    run.owner.parent_instance_id,
                    _time(run.submitted_at),
                    run.status.value,
                    run.remote_status.value if run.remote_status else None,
                    _time(updated),
                    run.closed_by,
                    run.note,
                ),
            )
        stored = self.get(run.engine, run.run_id)
        return stored if stored is not None else replace(run, updated_at=updated)

    def get(self, engine: str, run_id: str) -> RemoteRun | None:
        rows = self._select("WHERE engine = ? AND run_id = ?", (engine, run_id))
        return rows[0] if rows else None

    def unfinished(self) -> list[RemoteRun]:
        marks = ",".join("?" for _ in UNFINISHED)
        return self._select(
            f"WHERE status IN ({marks}) ORDER BY submitted_at, engine, run_id",
            tuple(s.value for s in UNFINISHED),
        )

    def move(
        self,
        engine: str,
        run_id: str,
        expected: Iterable[EntryStatus],
        status: EntryStatus,
        *,
        remote_status: RunStatus | None,
        by: str,
        note: str | None,
        now: dt.datetime,
    ) -> bool:
        allowed = [s.value for s in expected]
        marks = ",".join("?" for _ in allowed)
        with self._lock:
            cursor = self._connection.execute(
                "UPDATE remote_runs SET status = ?, remote_status = COALESCE(?, remote_status),"
                " updated_at = ?, closed_by = ?, note = COALESCE(?, note)"
                f" WHERE engine = ? AND run_id = ? AND status IN ({marks})",
                (
                    status.value,
                    remote_status.value if remote_status else None,
                    _time(now),
                    by if status.closed else None,
                    note,
                    engine,
                    run_id,
                    *allowed,
                ),
            )
        return cursor.rowcount == 1

    def prune(self, closed_before: dt.datetime) -> int:
        closed = [s.value for s in EntryStatus if s.closed]
        with self._lock:
            cursor = self._connection.execute(
                f"DELETE FROM remote_runs WHERE status IN ({','.join('?' for _ in closed)})"
                " AND updated_at < ?",
                (*closed, _time(closed_before)),
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _select(self, where: str, parameters: tuple[str, ...]) -> list[RemoteRun]:
        with self._lock:
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM remote_runs {where}", parameters
            ).fetchall()
        return [_from_row(row) for row in rows]


def _from_row(row: tuple[str | None, ...]) -> RemoteRun:
    engine, run_id, model, instance, parent, submitted, status, remote, updated, by, note = row
    return RemoteRun(
        engine=str(engine),
        run_id=str(run_id),
        model=str(model),
        owner=RunOwner(str(instance), parent),
        submitted_at=dt.datetime.fromisoformat(str(submitted)),
        status=EntryStatus(str(status)),
        remote_status=RunStatus(remote) if remote else None,
        updated_at=dt.datetime.fromisoformat(str(updated)),
        closed_by=by,
        note=note or "",
    )


def settle(
    ledger: RunLedger, state: RunState, *, by: str, note: str, now: dt.datetime
) -> EntryStatus | None:
    """Close an unfinished entry for a run seen in a terminal state; answers the new status, or
    None when the entry was already closed (or never recorded). A run the reaper was cancelling
    that ends cancelled is CANCELLED, keeping the reaper's note on why; any other end is
    FINISHED."""
    if not state.status.terminal:
        raise ValueError(f"run {state.run_id} is {state.status}, not over")
    end = EntryStatus.CANCELLED if state.status is RunStatus.CANCELLED else EntryStatus.FINISHED
    for expected, status, text in (
        (EntryStatus.CANCELLING, end, None),
        (EntryStatus.OPEN, EntryStatus.FINISHED, note),
    ):
        moved = ledger.move(
            state.engine,
            state.run_id,
            (expected,),
            status,
            remote_status=state.status,
            by=by,
            note=text,
            now=now,
        )
        if moved:
            return status
    return None
