"""A remote run's life, driven by the clock: queued, then running, then an outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Phase(Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


# What a submitted payload will do: (succeeds, message). Fakes decide it at submit time.
Outcome = Callable[[Any], tuple[bool, str]]


@dataclass
class FakeRun:
    run_id: str
    payload: Any
    submitted: float
    succeeds: bool
    message: str
    pending_s: float
    running_s: float | None
    cancel_requested: float | None = None
    ended: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def phase(self, now: float) -> Phase:
        if self.cancel_requested is not None:
            return Phase.CANCELLED if now >= self.cancel_requested + 0.05 else Phase.CANCELLING
        if now < self.submitted + self.pending_s:
            return Phase.PENDING
        if self.running_s is None or now < self.submitted + self.pending_s + self.running_s:
            return Phase.RUNNING
        return Phase.SUCCEEDED if self.succeeds else Phase.FAILED

    def last_change(self, now: float) -> float:
        """When the run last changed phase (what a service reports as `lastUpdated`)."""
        phase = self.phase(now)
        if phase is Phase.PENDING:
            return self.submitted
        if phase is Phase.RUNNING:
            return self.submitted + self.pending_s
        if phase is Phase.CANCELLING:
            return self.cancel_requested or now
        return self.end_time(now) or now

    def end_time(self, now: float) -> float | None:
        phase = self.phase(now)
        if phase is Phase.CANCELLED:
            return (self.cancel_requested or now) + 0.05
        if phase in (Phase.SUCCEEDED, Phase.FAILED) and self.running_s is not None:
            return self.submitted + self.pending_s + self.running_s
        return None


class RunBook:
    """The runs a fake service knows; `pending_s`/`running_s` set how long each phase lasts
    (`running_s=None` keeps runs running until cancelled: the timeout tests need that)."""

    def __init__(
        self,
        outcome: Outcome,
        *,
        pending_s: float = 0.05,
        running_s: float | None = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outcome = outcome
        self.pending_s = pending_s
        self.running_s = running_s
        self.clock = clock
        self._runs: dict[str, FakeRun] = {}
        self._lock = threading.Lock()

    def submit(self, run_id: str, payload: Any, *, hold: bool = False) -> FakeRun:
        """Record a run; `hold` keeps this one running until it is cancelled."""
        succeeds, message = self.outcome(payload)
        running_s = None if hold else self.running_s
        run = FakeRun(run_id, payload, self.clock(), succeeds, message, self.pending_s, running_s)
        with self._lock:
            self._runs[run_id] = run
        return run

    def get(self, run_id: str) -> FakeRun | None:
        with self._lock:
            return self._runs.get(run_id)

    def cancel(self, run_id: str) -> FakeRun | None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and run.cancel_requested is None:
                if run.phase(self.clock()) in (Phase.PENDING, Phase.RUNNING):
                    run.cancel_requested = self.clock()
            return run

    def all(self) -> list[FakeRun]:
        with self._lock:
            return list(self._runs.values())


def wait_terminal(engine: Any, run_id: str, timeout_s: float = 10.0) -> Any:
    """Poll a BatchEngine until the run is over, collecting the statuses seen on the way."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = engine.state(run_id)
        if not seen or seen[-1] != state.status:
            seen.append(state.status)
        if state.status.terminal:
            return state, seen
        time.sleep(0.02)
    raise TimeoutError(f"run {run_id} still {seen[-1]} after {timeout_s} s")
