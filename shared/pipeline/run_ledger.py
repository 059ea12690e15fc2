"""The ledger of remote batch runs: who submitted each one, and whether anyone still watches it.

The submit activity opens an entry, the monitor closes it when it sees the run end, and the
reaper (`shared.pipeline.reaper`) cancels the runs whose orchestration went away in between.
Every change is a compare-and-set on the entry's status, so two writers never both move it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from shared.batch.engine import RunState, RunStatus
from shared.documents.port import (
    Condition,
    ContainerSpec,
    DocumentConflict,
    DocumentContainer,
    DocumentDatabase,
    DocumentNotFound,
    PreconditionFailed,
    Query,
)


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


RUNS_CONTAINER = ContainerSpec("remote_runs", "/engine")
_MOVE_ATTEMPTS = 20


def _time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; the ledger keeps UTC times")
    # A fixed width keeps the text order the time order (the prune compares as text).
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


class DocumentRunLedger:
    """The ledger as documents: container `remote_runs`, partitioned by engine, one document
    per run (its id the run id). Moves are compare-and-set on the document's etag."""

    def __init__(self, container: DocumentContainer) -> None:
        self._container = container

    @classmethod
    def open(cls, documents: DocumentDatabase) -> DocumentRunLedger:
        return cls(documents.container(RUNS_CONTAINER))

    def record(self, run: RemoteRun) -> RemoteRun:
        updated = run.updated_at or run.submitted_at
        try:
            self._container.create(_to_document(replace(run, updated_at=updated)))
        except DocumentConflict:
            pass  # a retried submit: the first record stands
        stored = self.get(run.engine, run.run_id)
        return stored if stored is not None else replace(run, updated_at=updated)

    def get(self, engine: str, run_id: str) -> RemoteRun | None:
        try:
            return _from_document(self._container.read(run_id, engine))
        except DocumentNotFound:
            return None

    def unfinished(self) -> list[RemoteRun]:
        statuses = [s.value for s in UNFINISHED]
        runs = [_from_document(d) for d in self._all(Condition("/status", "in", statuses))]
        return sorted(runs, key=lambda r: (_time(r.submitted_at), r.engine, r.run_id))

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
        allowed = {s.value for s in expected}
        for _ in range(_MOVE_ATTEMPTS):
            try:
                current = self._container.read(run_id, engine)
            except DocumentNotFound:
                return False
            if current.get("status") not in allowed:
                return False
            moved = {
                **current,
                "status": status.value,
                "remote_status": remote_status.value if remote_status else current["remote_status"],
                "updated_at": _time(now),
                "closed_by": by if status.closed else None,
                "note": current["note"] if note is None else note,
            }
            try:
                self._container.replace(moved, if_match=current["_etag"])
            except (PreconditionFailed, DocumentNotFound):
                continue  # another writer moved it in between: look again
            return True
        raise RuntimeError(f"run {engine}/{run_id}: the ledger entry kept changing")

    def prune(self, closed_before: dt.datetime) -> int:
        closed = [s.value for s in EntryStatus if s.closed]
        old = self._all(
            Condition("/status", "in", closed), Condition("/updated_at", "<", _time(closed_before))
        )
        pruned = 0
        for document in old:
            try:
                self._container.delete(document["id"], document["engine"], document["_etag"])
            except (DocumentNotFound, PreconditionFailed):
                continue  # gone or changed meanwhile: not ours to forget now
            pruned += 1
        return pruned

    def _all(self, *where: Condition) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        continuation = None
        while True:
            page = self._container.query(
                Query(where=where, cross_partition=True, page_size=1000), continuation
            )
            found += page.documents
            continuation = page.continuation
            if continuation is None:
                return found


def _to_document(run: RemoteRun) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "engine": run.engine,
        "run_id": run.run_id,
        "model": run.model,
        "instance_id": run.owner.instance_id,
        "parent_instance_id": run.owner.parent_instance_id,
        "submitted_at": _time(run.submitted_at),
        "status": run.status.value,
        "remote_status": run.remote_status.value if run.remote_status else None,
        "updated_at": _time(run.updated_at or run.submitted_at),
        "closed_by": run.closed_by,
        "note": run.note,
    }


def _from_document(document: dict[str, Any]) -> RemoteRun:
    remote = document.get("remote_status")
    return RemoteRun(
        engine=str(document["engine"]),
        run_id=str(document["run_id"]),
        model=str(document["model"]),
        owner=RunOwner(str(document["instance_id"]), document.get("parent_instance_id")),
        submitted_at=dt.datetime.fromisoformat(str(document["submitted_at"])),
        status=EntryStatus(str(document["status"])),
        remote_status=RunStatus(remote) if remote else None,
        updated_at=dt.datetime.fromisoformat(str(document["updated_at"])),
        closed_by=document.get("closed_by"),
        note=str(document.get("note") or ""),
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
