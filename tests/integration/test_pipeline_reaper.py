"""A hard terminate runs no orchestrator code; the run reaper still cancels the remote runs.

The medallion pipeline runs on the devhost against a loopback Databricks, its reaper timer firing
every second; the top-level run is terminated through the Durable HTTP API. The reaper is also
driven directly against the loopback Synapse workspace, through the real SDK.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from embedded.documents.store import database_path
from shared.batch.engine import RunStatus, SqlJob
from shared.batch.synapse_engine import SynapseEngine
from shared.config import SynapseSettings
from shared.pipeline.reaper import Outcome, RunReaper
from shared.pipeline.run_ledger import EntryStatus, RemoteRun, RunOwner
from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.fakes.databricks import TOKEN, FakeDatabricks
from tests.fakes.synapse import FakeCredential, FakeSynapse
from tests.lakedata import ledger_at

pytestmark = pytest.mark.integration

HELD = "item_pairs"  # its Databricks run never ends on its own


def _until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} after {timeout} s")


@pytest.fixture
def databricks() -> Iterator[FakeDatabricks]:
    with FakeDatabricks(pending_s=0.1, running_s=0.3) as fake:
        fake.hold_models.add(HELD)
        yield fake


@pytest.fixture
def host(
    start_devhost: StartDevhost, tmp_path: Path, databricks: FakeDatabricks
) -> tuple[DevhostProcess, Path]:
    data_dir = tmp_path / "platform"
    env = {
        "PLATFORM_DATA_DIR": str(data_dir),
        "BATCH_ENGINE": "databricks",
        "DATABRICKS_HOST": databricks.url,
        "DATABRICKS_TOKEN": TOKEN,
        "DATABRICKS_CLUSTER_ID": "0101-loopback",
        "PIPELINE_POLL_FIRST_S": "0.2",
        "PIPELINE_POLL_MAX_S": "0.5",
        "PIPELINE_RUN_TIMEOUT_S": "600",
        "PIPELINE_REAPER_SCHEDULE": "* * * * * *",
        # Only the test starts runs.
        "AzureWebJobs.hourly_pipeline_run.Disabled": "true",
        "AzureWebJobs.nightly_table_maintenance.Disabled": "true",
    }
    return start_devhost(PROJECT_ROOT, env=env, data_dir=data_dir), data_dir


def _cancel_requests(fake: FakeDatabricks) -> int:
    return sum(1 for r in fake.server.requests if r.path.endswith("/runs/cancel"))


def test_terminating_a_run_cancels_its_remote_runs(
    host: tuple[DevhostProcess, Path], databricks: FakeDatabricks
) -> None:
    devhost, data_dir = host
    started = requests.post(devhost.url("/api/pipelines/medallion/runs"), timeout=30).json()
    top = started["id"]
    ledger = ledger_at(database_path(data_dir, "platform"))

    # Wait until only the held model's run is still going, watched by its gold orchestration.
    [entry] = _until(
        lambda: (
            [r for r in ledger.unfinished() if r.model == HELD]
            if [r.model for r in ledger.unfinished()] == [HELD]
            else None
        ),
        60,
        "the held model's run was never the only one left",
    )
    assert entry.owner == RunOwner(f"{top}:gold:{HELD}", top)
    assert entry.engine == "databricks"
    time.sleep(1.5)  # a few reaper sweeps: a watched run is left alone
    assert databricks.cancelled_models() == []

    terminated = requests.post(
        started["terminatePostUri"].replace("{text}", "stopped+by+an+operator"), timeout=30
    )
    assert terminated.status_code == 202
    stopped_at = time.monotonic()

    cancelled = _until(
        lambda: (e := ledger.get("databricks", entry.run_id)) and e.status.closed and e,
        10,
        "the held run was not cancelled",
    )
    elapsed = time.monotonic() - stopped_at
    assert databricks.cancelled_models() == [HELD]
    assert (cancelled.status, cancelled.remote_status) == (
        EntryStatus.CANCELLED,
        RunStatus.CANCELLED,
    )
    assert f"parent {top} is Terminated" in cancelled.note
    assert elapsed < 5, f"cancelled {elapsed:.1f} s after the terminate"
    status = requests.get(started["statusQueryGetUri"], timeout=30).json()
    assert status["runtimeStatus"] == "Terminated"
    # The gold model's orchestration outlived its parent; it sees the cancel land and ends.
    child_url = started["statusQueryGetUri"].replace(
        f"/instances/{top}", f"/instances/{quote(entry.owner.instance_id, safe='')}"
    )
    child = _until(
        lambda: (
            (c := requests.get(child_url, timeout=30).json())["runtimeStatus"] == "Completed" and c
        ),
        10,
        "the gold model's orchestration did not end",
    )
    assert child["output"]["status"] == "cancelled"

    sent = _cancel_requests(databricks)
    time.sleep(2)  # two more sweeps find nothing left to do
    assert _cancel_requests(databricks) == sent == 1
    assert ledger.unfinished() == []


class Purged:
    """Every instance was purged: no orchestration watches anything."""

    async def runtime_status(self, instance_id: str) -> str | None:
        return None


async def test_the_reaper_cancels_an_orphaned_synapse_run(tmp_path: Path) -> None:
    job = SqlJob("merchant_daily", "SELECT 1 AS n", {}, "abfss://l@a.dfs.core.windows.net/g/m")
    ledger = ledger_at(tmp_path / "state.sqlite")
    with FakeSynapse(tmp_path / "tls", running_s=None) as fake:
        engine = SynapseEngine.from_settings(
            SynapseSettings(fake.url, "platform_gold_sql"),
            FakeCredential(),
            connection_verify=str(fake.cert_path),
            retry_total=0,
        )
        run = engine.submit(job)
        owner = RunOwner("gone:gold:merchant_daily", "gone")
        ledger.record(RemoteRun.submitted(run, job.model, owner, dt.datetime.now(dt.UTC)))
        reaper = RunReaper(ledger, engine)

        first = await reaper.sweep(Purged())
        await asyncio.sleep(0.1)  # the fake takes 50 ms to go from Canceling to Cancelled
        second = await reaper.sweep(Purged())

        assert engine.state(run.run_id).status is RunStatus.CANCELLED
    assert [r.outcome for r in first.runs] == [Outcome.CANCELLING]  # Synapse said Canceling
    assert [r.outcome for r in second.runs] == [Outcome.CANCELLED]
    final = ledger.get("synapse", run.run_id)
    assert final is not None and final.status is EntryStatus.CANCELLED
    assert "no longer exists" in final.note
