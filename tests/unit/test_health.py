"""`GET /api/health`, called as the worker would, without a host."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from functions import health
from shared.config import Adapter
from shared.events.eventhubs import EventHubsProbe
from shared.health import Readiness, check_health
from shared.lakehouse.storage import AdlsLakeProbe, LocalLakeProbe

pytestmark = pytest.mark.unit


def health_function():  # type: ignore[no-untyped-def]
    (builder,) = health.bp._function_builders
    return builder.build().get_user_function()


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
