"""Backend readiness: each adapter answers whether it can serve, and the report sums them up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.config import Adapter


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


async def check_health(
    probes: Sequence[ReadinessProbe], *, version: str, started_at: float, timeout_s: float = 5.0
) -> HealthReport:
    """Run every probe concurrently, each bounded by the timeout."""
    statuses = await asyncio.gather(*(_probe(p, timeout_s) for p in probes))
    return HealthReport(version, time.time() - started_at, tuple(statuses))
