"""Backend readiness: each adapter answers whether it can serve, and the report sums them up.

`check_health` runs every probe. `RecentHealth` is what the health endpoint serves from: the
probes' results of at most `HEALTH_MAX_AGE_S` ago, so that polling the endpoint costs about as
much as a no-op request (a probe creates a file in the lake, or opens the event log, each time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.config import Adapter

HEALTH_MAX_AGE_S = 2.0  # how old the backends' results in a health report may be
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


class ReadinessProbe(Protocol):
    """A backend the platform depends on, as the health endpoint reports it."""

    @property
    def backend(self) -> str: ...

    @property
    def adapter(self) -> Adapter: ...

    def check(self) -> Readiness: ...


@dataclass(frozen=True)
class BackendStatus:
    backend: str
    adapter: Adapter
    ready: bool
    detail: str
    latency_ms: float


@dataclass(frozen=True)
class HealthReport:
    version: str
    uptime_s: float
    backends: tuple[BackendStatus, ...]

    @property
    def healthy(self) -> bool:
        return all(b.ready for b in self.backends)

    def to_json(self) -> dict[str, object]:
        return {
            "status": "healthy" if self.healthy else "unhealthy",
            "version": self.version,
            "uptime_s": round(self.uptime_s, 3),
            "backends": {
                b.backend: {
                    "adapter": b.adapter.value,
                    "ready": b.ready,
                    "detail": b.detail,
                    "latency_ms": b.latency_ms,
                }
                for b in self.backends
            },
        }


async def _probe(probe: ReadinessProbe, timeout_s: float) -> BackendStatus:
    started = time.perf_counter()
    try:
        readiness = await asyncio.wait_for(asyncio.to_thread(probe.check), timeout_s)
    except TimeoutError:
        readiness = Readiness(False, f"no answer within {timeout_s:g} s")
    except Exception as error:  # a probe that crashes means the backend is not ready
        readiness = Readiness(False, f"{type(error).__name__}: {error}")
    latency = round((time.perf_counter() - started) * 1000, 3)
    return BackendStatus(probe.backend, probe.adapter, readiness.ready, readiness.detail, latency)


async def _probe_all(
    probes: Sequence[ReadinessProbe], timeout_s: float
) -> tuple[BackendStatus, ...]:
    return tuple(await asyncio.gather(*(_probe(p, timeout_s) for p in probes)))


async def check_health(
    probes: Sequence[ReadinessProbe],
    *,
    version: str,
    started_at: float,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> HealthReport:
    """Run every probe concurrently, each bounded by the timeout."""
    statuses = await _probe_all(probes, timeout_s)
    return HealthReport(version, time.time() - started_at, statuses)


class RecentHealth:
    """Health reports whose backends were probed at most `max_age_s` ago.

    A report within that age reuses the last results (each backend's `latency_ms` is that of
    its last probe); past it, the next request runs the probes again, and the requests that
    come while they run wait for the same run. The version and the uptime are always current.
    The results belong to the probes they came from: a report for other probes (another
    platform's, as in tests) probes afresh."""

    def __init__(
        self,
        max_age_s: float = HEALTH_MAX_AGE_S,
        timeout_s: float = PROBE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._probes: Sequence[ReadinessProbe] | None = None
        self._statuses: tuple[BackendStatus, ...] = ()
        self._checked_at = float("-inf")
        self._running: (
            tuple[asyncio.AbstractEventLoop, asyncio.Task[tuple[BackendStatus, ...]]] | None
        ) = None

    async def report(
        self, probes: Sequence[ReadinessProbe], *, version: str, started_at: float
    ) -> HealthReport:
        if probes is self._probes and self._clock() - self._checked_at <= self.max_age_s:
            statuses = self._statuses
        else:
            statuses = await self._refresh(probes)
        return HealthReport(version, time.time() - started_at, statuses)

    async def _refresh(self, probes: Sequence[ReadinessProbe]) -> tuple[BackendStatus, ...]:
        loop = asyncio.get_running_loop()
        running = self._running
        if running is None or running[0] is not loop or probes is not self._probes:
            if probes is not self._probes:  # another platform's: its results are not these
                self._probes, self._checked_at = probes, float("-inf")
            running = self._running = (loop, loop.create_task(self._run(probes)))
        # Shielded: a request that goes away does not cancel the run the others wait for.
        return await asyncio.shield(running[1])

    async def _run(self, probes: Sequence[ReadinessProbe]) -> tuple[BackendStatus, ...]:
        try:
            statuses = await _probe_all(probes, self.timeout_s)
            if probes is self._probes:
                self._statuses, self._checked_at = statuses, self._clock()
            return statuses
        finally:
            if self._running is not None and self._running[1] is asyncio.current_task():
                self._running = None
