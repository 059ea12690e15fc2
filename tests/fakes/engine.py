"""An in-memory remote BatchEngine: runs stay where the test puts them, and every call is logged."""

from __future__ import annotations

import itertools

from shared.batch.engine import BatchError, RunState, RunStatus, SqlJob, UnknownRun


class FakeRemoteEngine:
    """Implements the BatchEngine port. Submitted runs are PENDING until `finish` moves them;
    `cancel` stops them at once, or leaves them RUNNING when `slow_cancel` is set (the next
    `state` then says CANCELLED). `fail_next` makes the next call raise a transient BatchError."""

    def __init__(self, name: str = "fake-remote") -> None:
        self.name = name
        self.runs: dict[str, RunStatus] = {}
        self.calls: list[tuple[str, str]] = []
        self.slow_cancel = False
        self.fail_next = 0
        self._stopping: set[str] = set()
        self._ids = itertools.count(1)
        self._keys: dict[tuple[str, str], str] = {}

    def submit(self, job: SqlJob) -> RunState:
        self._call("submit", job.model)
        key = (job.model, job.run_key)
        if key not in self._keys:  # one run per logical job, as the real adapters promise
            self._keys[key] = f"run-{next(self._ids)}"
            self.runs[self._keys[key]] = RunStatus.PENDING
        return self._state(self._keys[key])

    def state(self, run_id: str) -> RunState:
        self._call("state", run_id)
        if run_id in self._stopping:
            self._stopping.discard(run_id)
            self.runs[run_id] = RunStatus.CANCELLED
        return self._state(run_id)

    def cancel(self, run_id: str) -> RunState:
        self._call("cancel", run_id)
        status = self._state(run_id).status
        if not status.terminal:
            if self.slow_cancel:
                self._stopping.add(run_id)
                self.runs[run_id] = RunStatus.RUNNING
            else:
                self.runs[run_id] = RunStatus.CANCELLED
        return self._state(run_id)

    def finish(self, run_id: str, status: RunStatus) -> None:
        self.runs[run_id] = status

    def cancels(self) -> list[str]:
        return [run_id for call, run_id in self.calls if call == "cancel"]

    def _call(self, name: str, subject: str) -> None:
        self.calls.append((name, subject))
        if self.fail_next > 0:
            self.fail_next -= 1
            raise BatchError(f"{self.name} is unavailable", transient=True)

    def _state(self, run_id: str) -> RunState:
        if run_id not in self.runs:
            raise UnknownRun(f"{self.name} has no run {run_id}")
        return RunState(self.name, run_id, self.runs[run_id])
