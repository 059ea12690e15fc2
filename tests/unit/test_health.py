"""`GET /api/health`, called as the worker would, without a host."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from functions import health
from shared.config import Adapter
from shared.events.eventhubs import EventHubsProbe
from shared.health import Readiness, RecentHealth, check_health
from shared.lakehouse.storage import AdlsLakeProbe, LocalLakeProbe
from tests.functions import async_blueprint_function

pytestmark = pytest.mark.unit


def health_function():  # type: ignore[no-untyped-def]
    return async_blueprint_function(health.bp)


async def test_health_reports_backends_and_200(platform_env: Path) -> None:
    request = func.HttpRequest("GET", "http://localhost/api/health", body=b"")
    response = await health_function()(request)
    assert response.status_code == 200
    document = json.loads(response.get_body())
    assert document["status"] == "healthy"
    assert document["version"]
    assert document["uptime_s"] >= 0
    assert document["backends"]["lake"]["adapter"] == "local"
    assert document["backends"]["lake"]["ready"] is True
    assert (platform_env / "lake").is_dir()


@dataclass(frozen=True)
class StuckProbe:
    backend: str = "stuck"
    adapter: Adapter = Adapter.AZURE

    def check(self) -> Readiness:
        time.sleep(1)
        return Readiness(True, "too late")


@dataclass(frozen=True)
class CrashingProbe:
    backend: str = "crashing"
    adapter: Adapter = Adapter.LOCAL

    def check(self) -> Readiness:
        raise ConnectionError("refused")


async def test_unready_backends_make_the_report_unhealthy(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    probes = [LocalLakeProbe(blocked / "lake"), StuckProbe(), CrashingProbe()]
    report = await check_health(probes, version="v", started_at=time.time(), timeout_s=0.2)
    assert not report.healthy
    body = report.to_json()
    assert body["status"] == "unhealthy"
    backends = body["backends"]
    assert isinstance(backends, dict)
    assert backends["lake"]["ready"] is False
    assert "no answer within 0.2 s" in backends["stuck"]["detail"]
    assert backends["crashing"]["detail"] == "ConnectionError: refused"


async def test_health_answers_503_when_a_backend_is_down(
    platform_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform_env.parent.mkdir(parents=True, exist_ok=True)
    platform_env.write_text("a file where the data dir should be")
    request = func.HttpRequest("GET", "http://localhost/api/health", body=b"")
    response = await health_function()(request)
    assert response.status_code == 503
    assert json.loads(response.get_body())["backends"]["lake"]["ready"] is False
    await asyncio.sleep(0)


class CountingHub:
    made = 0

    def __init__(self, namespace: str, hub: str, fail: bool = False) -> None:
        CountingHub.made += 1
        self.fail = fail

    def get_eventhub_properties(self) -> dict[str, Any]:
        if self.fail:
            raise ConnectionError("unreachable")
        return {"partition_ids": ["0", "1"]}


def test_the_event_hubs_probe_builds_its_client_once() -> None:
    CountingHub.made = 0
    probe = EventHubsProbe("ns.servicebus.windows.net", client_factory=CountingHub)
    results = [probe.check() for _ in range(3)]
    assert all(r.ready for r in results) and "2 partitions" in results[0].detail
    assert CountingHub.made == 1
    failing = EventHubsProbe(
        "ns.servicebus.windows.net", client_factory=lambda n, h: CountingHub(n, h, fail=True)
    )
    assert [failing.check().ready for _ in range(2)] == [False, False]
    assert CountingHub.made == 2


class Generations:
    def __init__(self) -> None:
        self.generation = 1

    def current(self) -> tuple[dict[str, str] | None, int]:
        return {"bearer_token": f"t{self.generation}"}, self.generation


def test_the_adls_probe_builds_a_handler_per_token_not_per_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, str] | None] = []

    class Handler:
        def __init__(self, root: str, options: dict[str, str] | None) -> None:
            made.append(options)

        def get_file_info_selector(self, selector: Any) -> list[Any]:
            return []

    import deltalake.fs

    monkeypatch.setattr(deltalake.fs, "DeltaStorageHandler", Handler)
    access = Generations()
    probe = AdlsLakeProbe("abfss://lake@acct.dfs.core.windows.net/x", access)
    assert all(probe.check().ready for _ in range(3))
    access.generation = 2  # a new token
    assert probe.check().ready
    assert made == [{"bearer_token": "t1"}, {"bearer_token": "t2"}]


@dataclass
class CountingProbe:
    """A probe that counts its checks, ready or not as told."""

    backend: str = "counting"
    adapter: Adapter = Adapter.LOCAL
    ready: bool = True
    checks: int = 0
    delay_s: float = 0.0

    def check(self) -> Readiness:
        self.checks += 1
        time.sleep(self.delay_s)
        return Readiness(self.ready, f"check {self.checks}")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_recent_health_reuses_the_probes_results_within_their_age() -> None:
    probe, clock = CountingProbe(), Clock()
    recent = RecentHealth(max_age_s=2.0, clock=clock)
    probes = (probe,)
    first = await recent.report(probes, version="v", started_at=time.time() - 5)
    clock.now += 1.9
    probe.ready = False  # not seen until the results are too old
    again = await recent.report(probes, version="v", started_at=time.time() - 7)
    assert probe.checks == 1 and again.healthy
    assert again.backends == first.backends and again.uptime_s > first.uptime_s
    clock.now += 0.2
    later = await recent.report(probes, version="v", started_at=time.time())
    assert probe.checks == 2 and not later.healthy
    assert later.to_json()["backends"]["counting"]["detail"] == "check 2"  # type: ignore[index]


async def test_concurrent_reports_share_one_run_of_the_probes() -> None:
    probe = CountingProbe(delay_s=0.1)
    recent = RecentHealth()
    probes = (probe,)
    reports = await asyncio.gather(
        *(recent.report(probes, version="v", started_at=time.time()) for _ in range(10))
    )
    assert probe.checks == 1
    assert all(r.healthy for r in reports)


async def test_other_probes_are_probed_afresh() -> None:
    recent = RecentHealth()
    ready, down = CountingProbe(), CountingProbe(ready=False)
    assert (await recent.report((ready,), version="v", started_at=time.time())).healthy
    assert not (await recent.report((down,), version="v", started_at=time.time())).healthy
    assert (ready.checks, down.checks) == (1, 1)


async def test_the_route_probes_once_for_requests_close_together(
    platform_env: Path, installed: Callable[[Any], Any]
) -> None:
    from shared.bootstrap import current_platform

    probe = CountingProbe()
    installed(dataclasses.replace(current_platform(), probes=(probe,)))
    request = func.HttpRequest("GET", "http://localhost/api/health", body=b"")
    responses = [await health_function()(request) for _ in range(20)]
    assert {r.status_code for r in responses} == {200}
    assert probe.checks == 1
    assert json.loads(responses[-1].get_body())["backends"]["counting"]["detail"] == "check 1"
