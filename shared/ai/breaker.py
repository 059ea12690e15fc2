"""A circuit breaker per deployment: closed, open (benched until a time), half-open (one probe).

It opens after `failures_to_open` consecutive failures, for `cooldown_s`; or at once on a 429,
for the upstream's Retry-After capped at `retry_after_cap_s` (a day-long Retry-After must not
bench a deployment for a day: the cap bounds how stale the bench can be). Once its time has
passed, one request probes it (half-open): success closes it, failure opens it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class BreakerPolicy:
    failures_to_open: int = 3
    cooldown_s: float = 30.0
    retry_after_cap_s: float = 30.0

    def bench_for(self, retry_after_s: float | None) -> float:
        """How long a 429 benches a deployment: its Retry-After, capped (the cooldown if none)."""
        wanted = self.cooldown_s if retry_after_s is None else retry_after_s
        return max(0.0, min(wanted, self.retry_after_cap_s))


class CircuitBreaker:
    """The health of one deployment. `try_acquire` before a request; then exactly one of
    `succeeded`, `failed`, `throttled` or `release` (neither: the caller went away)."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state(self._clock())

    def _state(self, now: float) -> BreakerState:
        if self._open_until is None:
            return BreakerState.CLOSED
        return BreakerState.OPEN if now < self._open_until else BreakerState.HALF_OPEN

    def try_acquire(self) -> bool:
        """May a request go to this deployment now? In half-open, only one at a time."""
        with self._lock:
            state = self._state(self._clock())
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.OPEN or self._probing:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._failures, self._open_until, self._probing = 0, None, False

    def failed(self) -> None:
        """A fault (5xx, a timeout, a broken connection): opens after enough in a row, or at
        once when it was the half-open probe."""
        with self._lock:
            probing, self._probing = self._probing, False
            self._failures += 1
            if probing or self._failures >= self._policy.failures_to_open:
                self._open_until = self._clock() + self._policy.cooldown_s

    def throttled(self, retry_after_s: float | None) -> float:
        """A 429: open for its Retry-After, capped. Returns how long it is benched."""
        bench = self._policy.bench_for(retry_after_s)
        with self._lock:
            self._probing = False
            self._failures += 1
            until = self._clock() + bench
            self._open_until = max(until, self._open_until or until)
        return bench

    def release(self) -> None:
        """The request ended with no verdict on the deployment (it was cancelled)."""
        with self._lock:
            self._probing = False

    def retry_in(self) -> float:
        """Seconds until a request may be tried here (0 when it may be now)."""
        with self._lock:
            now = self._clock()
            if self._state(now) is BreakerState.OPEN:
                assert self._open_until is not None
                return self._open_until - now
            return 1.0 if self._probing else 0.0  # a probe is out: its answer comes soon
