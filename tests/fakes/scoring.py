"""An in-memory Spark engine for batch scorings: runs stay where the test puts them, and every
submitted job is kept."""

from __future__ import annotations

import itertools

from shared.batch.engine import BatchError, RunState, RunStatus, ScoringJob, SqlJob, UnknownRun


class FakeScoringEngine:
    """Implements the ScoringEngine port (and BatchEngine's, refusing SQL jobs). A submitted
    scoring is PENDING until `finish` moves it; one run per idempotency key, as the real
    adapters promise."""

    def __init__(self, name: str = "fake-spark") -> None:
        self.name = name
        self.jobs: list[ScoringJob] = []
        self.runs: dict[str, RunState] = {}
        self.cancelled: list[str] = []
        self._keys: dict[str, str] = {}
        self._ids = itertools.count(1)

    def submit(self, job: SqlJob) -> RunState:
        raise BatchError(f"{self.name} runs no SQL jobs")

    def submit_scoring(self, job: ScoringJob) -> RunState:
        self.jobs.append(job)
        key = job.idempotency_key()
        if key not in self._keys:
            self._keys[key] = run_id = f"run-{next(self._ids)}"
            self.runs[run_id] = RunState(self.name, run_id, RunStatus.PENDING)
        return self.runs[self._keys[key]]

    def state(self, run_id: str) -> RunState:
        if run_id not in self.runs:
            raise UnknownRun(f"{self.name} has no run {run_id}")
        return self.runs[run_id]

    def cancel(self, run_id: str) -> RunState:
        self.cancelled.append(run_id)
        if not self.state(run_id).status.terminal:
            self.finish(run_id, RunStatus.CANCELLED, "cancelled")
        return self.state(run_id)

    def finish(self, run_id: str, status: RunStatus, message: str = "") -> None:
        self.runs[run_id] = RunState(self.name, run_id, status, message)
