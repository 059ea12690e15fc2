"""The run reaper: cancels remote runs that no orchestration watches any more.

A hard terminate (Durable `terminate`) runs no orchestrator code, so a gold model's monitor cannot
cancel its Databricks or Synapse run; nor can a monitor whose orchestration failed or was purged.
The reaper, run on a timer, looks up the submitting instance of every unfinished run in the ledger
and its parent (the top-level `medallion` run). A run whose instances are not both still active
(Pending, Running, Suspended) is cancelled through the BatchEngine port. Every step is a
compare-and-set on the ledger, so a second sweep, or one racing the monitor, changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from shared.batch.engine import BatchEngine, BatchError, RunState, UnknownRun
from shared.pipeline.run_ledger import UNFINISHED, EntryStatus, RemoteRun, RunLedger, settle

# An instance in one of these may still act on its run (a suspended one resumes where it was).
ACTIVE = frozenset({"Pending", "Running", "ContinuedAsNew", "Suspended"})
RETENTION = dt.timedelta(days=30)  # closed entries are kept this long, for operators


class OrchestrationStatuses(Protocol):
    """Where a Durable instance is: its runtime status, or None when there is no such instance."""

    async def runtime_status(self, instance_id: str) -> str | None: ...


class StatusLookupFailed(RuntimeError):
    """The Durable client could not say where an instance is (the reaper tries again later)."""


class _StatusClient(Protocol):
    async def get_status(self, instance_id: str) -> Any: ...


class DurableStatuses:
    """OrchestrationStatuses over a `durableClient` binding (`DurableOrchestrationClient`)."""

    def __init__(self, client: _StatusClient) -> None:
        self._client = client

    async def runtime_status(self, instance_id: str) -> str | None:
        try:
            status = await self._client.get_status(instance_id)
        except Exception as error:  # the SDK raises bare Exception on unexpected answers
            raise StatusLookupFailed(f"status of {instance_id}: {error}") from error
        if not status:  # the SDK's status is falsy when the instance does not exist
            return None
        runtime = status.runtime_status
        if runtime is None:
            raise StatusLookupFailed(f"status of {instance_id} has no runtimeStatus")
        return str(getattr(runtime, "value", runtime))


class Outcome(StrEnum):
    WATCHED = "watched"  # its orchestration still watches it: left alone
    CANCELLED = "cancelled"  # stopped by this sweep
    CANCELLING = "cancelling"  # asked to stop; the next sweep checks it ended
    CLOSED = "closed"  # it had ended already, or its monitor closed it meanwhile
    SKIPPED = "skipped"  # this app cannot act on it (another engine)
    ERROR = "error"  # the engine or the Durable client failed; the next sweep tries again


@dataclass(frozen=True)
class Reaped:
    run: RemoteRun
    outcome: Outcome
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "engine": self.run.engine,
            "run_id": self.run.run_id,
            "model": self.run.model,
            "instance_id": self.run.owner.instance_id,
            "outcome": self.outcome.value,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ReapReport:
    """What one sweep did to each unfinished run, and how many closed entries it forgot."""

    runs: tuple[Reaped, ...] = ()
    pruned: int = 0
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.runs if r.outcome is outcome)

    @property
    def acted(self) -> bool:
        return any(r.outcome is not Outcome.WATCHED for r in self.runs) or self.pruned > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "unfinished": len(self.runs),
            **{outcome.value: self.count(outcome) for outcome in Outcome},
            "pruned": self.pruned,
            "runs": [r.to_json() for r in self.runs if r.outcome is not Outcome.WATCHED],
        }


# Each instance's runtime status, None when it does not exist, or why it could not be looked up.
Statuses = dict[str, "str | None | StatusLookupFailed"]


def abandonment(run: RemoteRun, statuses: Statuses) -> str | None:
    """Why no orchestration watches this run any more, or None while one does; raises
    StatusLookupFailed when an instance's status is not known."""
    owner = run.owner
    roles = (("orchestration", owner.instance_id), ("parent", owner.parent_instance_id))
    for role, instance in roles:
        if instance is None:
            continue
        status = statuses.get(instance, StatusLookupFailed(f"{instance} was not looked up"))
        if isinstance(status, StatusLookupFailed):
            raise status
        if status is None:
            return f"its {role} {instance} no longer exists"
        if status not in ACTIVE:
            return f"its {role} {instance} is {status}"
    return None


class RunReaper:
    """Cancels the ledger's orphaned runs in one engine (the one this app is configured with)."""

    def __init__(
        self,
        ledger: RunLedger,
        engine: BatchEngine,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        retention: dt.timedelta = RETENTION,
    ) -> None:
        self._ledger = ledger
        self._engine = engine
        self._clock = clock
        self._retention = retention

    async def sweep(self, statuses: OrchestrationStatuses) -> ReapReport:
        """Check every unfinished run once; blocking calls run on worker threads."""
        runs = await asyncio.to_thread(self._ledger.unfinished)
        known = await _lookup(statuses, _instances(r for r in runs if r.status is EntryStatus.OPEN))
        reaped = []
        for run in runs:
            if run.status is EntryStatus.CANCELLING:
                reaped.append(await asyncio.to_thread(self.reap, run, run.note))
                continue
            try:
                why = abandonment(run, known)
            except StatusLookupFailed as error:
                reaped.append(Reaped(run, Outcome.ERROR, str(error)))
                continue
            if why is None:
                reaped.append(Reaped(run, Outcome.WATCHED))
            else:
                reaped.append(await asyncio.to_thread(self.reap, run, why))
        pruned = await asyncio.to_thread(self._ledger.prune, self._clock() - self._retention)
        return ReapReport(tuple(reaped), pruned, self._clock())

    def reap(self, run: RemoteRun, why: str) -> Reaped:
        """Stop one orphaned run: close it if it already ended, else claim it and cancel it."""
        if run.engine != self._engine.name:
            detail = f"recorded by engine {run.engine}; this app runs {self._engine.name}"
            return Reaped(run, Outcome.SKIPPED, detail)
        try:
            state = self._engine.state(run.run_id)
            if state.status.terminal:
                return self._closed(run, state, f"{why}; it had already ended {state.status}")
            claimed = self._ledger.move(
                run.engine,
                run.run_id,
                UNFINISHED,
                EntryStatus.CANCELLING,
                remote_status=state.status,
                by="reaper",
                note=why,
                now=self._clock(),
            )
            if not claimed:
                return Reaped(run, Outcome.CLOSED, "its monitor closed it meanwhile")
            after = self._engine.cancel(run.run_id)
        except UnknownRun as error:
            self._ledger.move(
                run.engine,
                run.run_id,
                UNFINISHED,
                EntryStatus.FINISHED,
                remote_status=None,
                by="reaper",
                note=f"{why}; the engine no longer knows it",
                now=self._clock(),
            )
            return Reaped(run, Outcome.CLOSED, str(error))
        except BatchError as error:
            return Reaped(run, Outcome.ERROR, str(error))
        if after.status.terminal:
            return self._closed(run, after, why)
        return Reaped(run, Outcome.CANCELLING, f"{why}; the engine says {after.status}")

    def _closed(self, run: RemoteRun, state: RunState, note: str) -> Reaped:
        status = settle(self._ledger, state, by="reaper", note=note, now=self._clock())
        if status is EntryStatus.CANCELLED:
            return Reaped(run, Outcome.CANCELLED, note)
        return Reaped(run, Outcome.CLOSED, note)


def _instances(runs: Iterable[RemoteRun]) -> set[str]:
    ids = set()
    for run in runs:
        ids.add(run.owner.instance_id)
        if run.owner.parent_instance_id:
            ids.add(run.owner.parent_instance_id)
    return ids


async def _lookup(statuses: OrchestrationStatuses, instance_ids: set[str]) -> Statuses:
    ordered = sorted(instance_ids)
    answers = await asyncio.gather(
        *(statuses.runtime_status(i) for i in ordered), return_exceptions=True
    )
    found: Statuses = {}
    for instance_id, answer in zip(ordered, answers, strict=True):
        if isinstance(answer, BaseException) and not isinstance(answer, Exception):
            raise answer  # cancellation and the like are not a failed lookup
        found[instance_id] = (
            StatusLookupFailed(str(answer)) if isinstance(answer, Exception) else answer
        )
    return found
