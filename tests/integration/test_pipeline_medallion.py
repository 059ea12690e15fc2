"""The medallion pipeline end to end: events posted over HTTP, a run started over HTTP, and the
lake checked against what was posted; then Databricks runs that fail, time out or are cancelled."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from deltalake import DeltaTable

from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.fakes.databricks import TOKEN, FakeDatabricks

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 5, 1, 22, 0, tzinfo=dt.UTC)
# The scheduled runs are switched off so that only the tests start runs.
FAST = {
    "PIPELINE_POLL_FIRST_S": "0.2",
    "PIPELINE_POLL_MAX_S": "0.5",
    "AzureWebJobs.hourly_pipeline_run.Disabled": "true",
    "AzureWebJobs.nightly_table_maintenance.Disabled": "true",
}


def _payment(
    event_id: str, account: str, amount: float, minutes: int, **data: Any
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/pos/store-1",
        "type": "payment.transaction",
        "time": (T0 + dt.timedelta(minutes=minutes)).isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "transaction_id": f"t-{event_id}",
            "account_id": account,
            "card_number": "4242424242424242",
            "amount": amount,
            "currency": "EUR",
            "merchant_id": "m-1",
            "merchant_category": "5411",
            "country": "NL",
            "channel": "pos",
            **data,
        },
    }


def _post(host: DevhostProcess, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = requests.post(
        host.url("/api/events"),
        data=json.dumps(events),
        headers={"content-type": "application/cloudevents-batch+json"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def _rows(data_dir: Path, layer: str, table: str) -> list[dict[str, Any]]:
    path = data_dir / "lake" / layer / table
    if not (path / "_delta_log").exists():
        return []
    return DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def _wait_for_bronze(data_dir: Path, table: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_rows(data_dir, "bronze", table)) >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"bronze/{table} has {len(_rows(data_dir, 'bronze', table))} rows")


def _run(host: DevhostProcess, timeout: float = 90) -> dict[str, Any]:
    response = requests.post(host.url("/api/pipelines/medallion/runs"), timeout=30)
    assert response.status_code == 202, response.text
    status_url = response.json()["statusQueryGetUri"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(status_url, timeout=30).json()
        if status["runtimeStatus"] not in ("Pending", "Running"):
            assert status["runtimeStatus"] == "Completed", status
            return dict(status)
        time.sleep(0.2)
    raise TimeoutError(f"the run is still {status['runtimeStatus']}: {status.get('customStatus')}")


def _versions(data_dir: Path, layer: str) -> dict[str, int]:
    root = data_dir / "lake" / layer
    return {
        p.name: DeltaTable(str(p)).version()
        for p in sorted(root.iterdir())
        if (p / "_delta_log").exists()
    }


@pytest.fixture
def platform_host(
    start_devhost: StartDevhost, tmp_path: Path
) -> Iterator[tuple[DevhostProcess, Path]]:
    data_dir = tmp_path / "platform"
    host = start_devhost(
        PROJECT_ROOT, env={"PLATFORM_DATA_DIR": str(data_dir), **FAST}, data_dir=data_dir
    )
    yield host, data_dir


def test_posted_events_become_silver_and_gold_and_a_rerun_changes_nothing(
    platform_host: tuple[DevhostProcess, Path],
) -> None:
    host, data_dir = platform_host
    valid = [_payment(f"e{i}", f"acct-{i % 3}", 10 + i * 1.25, minutes=i * 20) for i in range(12)]
    huge = _payment("huge", "acct-0", 5_000_000.0, minutes=5)  # valid by contract, not by silver
    accepted = _post(host, valid[:8] + [huge])
    assert accepted["accepted"] == 9
    assert _post(host, valid[6:])["accepted"] == 6  # e6 and e7 sent again
    _wait_for_bronze(data_dir, "payment_transaction", 15)

    first = _run(host)

    summary = first["output"]
    silver = _rows(data_dir, "silver", "payment_transaction")
    assert sorted(r["event_id"] for r in silver) == sorted(e["id"] for e in valid)
    assert summary["totals"]["rows_in"] == 15
    assert summary["totals"]["duplicates"] == 2
    assert summary["totals"]["quarantined"] == 1
    [quarantined] = _rows(data_dir, "silver", "quarantine")
    assert (quarantined["event_id"], quarantined["rule"]) == ("huge", "range:amount")
    checks = {c["rule"]: c for c in summary["silver"]["silver/payment_transaction"]["checks"]}
    assert checks["range:amount"]["rows_failed"] == 1

    expected: dict[tuple[str, dt.date], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[str, dt.date], int] = defaultdict(int)
    for event in valid:
        key = (event["data"]["account_id"], dt.datetime.fromisoformat(event["time"]).date())
        expected[key] += Decimal(str(event["data"]["amount"])).quantize(Decimal("0.01"))
        counts[key] += 1
    gold = {(r["account_id"], r["day"]): r for r in _rows(data_dir, "gold", "account_daily_spend")}
    assert {key: row["total_amount"] for key, row in gold.items()} == dict(expected)
    assert {key: row["txn_count"] for key, row in gold.items()} == dict(counts)
    assert len({day for _, day in expected}) == 2  # the events span midnight UTC
    assert first["customStatus"]["tables"]["gold/account_daily_spend"] == "succeeded"

    before = {**_versions(data_dir, "silver"), **_versions(data_dir, "gold")}
    second = _run(host)

    assert {**_versions(data_dir, "silver"), **_versions(data_dir, "gold")} == before
    assert {r["status"] for r in second["output"]["gold"].values()} == {"up_to_date"}
    assert second["output"]["totals"]["rows_in"] == 0
    runs = requests.get(host.url("/api/pipelines/medallion/runs"), timeout=30).json()["runs"]
    assert [r["instanceId"] for r in runs] == [second["instanceId"], first["instanceId"]]
    assert runs[1]["totals"]["quarantined"] == 1


def test_unknown_pipelines_are_404(platform_host: tuple[DevhostProcess, Path]) -> None:
    host, _ = platform_host
    assert requests.post(host.url("/api/pipelines/nope/runs"), timeout=30).status_code == 404
    assert requests.get(host.url("/api/pipelines/nope/runs"), timeout=30).status_code == 404
    assert (
        requests.get(host.url("/api/pipelines/medallion/runs?top=x"), timeout=30).status_code == 400
    )


def test_nightly_maintenance_compacts_every_table(
    platform_host: tuple[DevhostProcess, Path],
) -> None:
    host, data_dir = platform_host
    _post(host, [_payment(f"e{i}", "acct", 1.0, minutes=i) for i in range(3)])
    _wait_for_bronze(data_dir, "payment_transaction", 3)
    _run(host)
    started = requests.post(
        host.url("/runtime/webhooks/durabletask/orchestrators/medallion_maintenance"), timeout=30
    ).json()
    deadline = time.monotonic() + 60
    while (status := requests.get(started["statusQueryGetUri"], timeout=30).json())[
        "runtimeStatus"
    ] in (
        "Pending",
        "Running",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    output = status["output"]
    assert status["runtimeStatus"] == "Completed" and output["status"] == "succeeded", output
    by_table = {r["table"]: r for r in output["tables"]}
    assert by_table["silver/payment_transaction"]["operation"] == "z_order"
    assert by_table["gold/account_daily_spend"]["zorder"] == ["account_id", "day", "currency"]
    assert by_table["silver/iot_telemetry"]["status"] == "missing"


@pytest.fixture
def databricks() -> Iterator[FakeDatabricks]:
    with FakeDatabricks(pending_s=0.1, running_s=0.3) as fake:
        yield fake


def _databricks_host(
    start_devhost: StartDevhost, tmp_path: Path, fake: FakeDatabricks, timeout_s: str
) -> tuple[DevhostProcess, Path]:
    data_dir = tmp_path / "platform"
    env = {
        "PLATFORM_DATA_DIR": str(data_dir),
        "BATCH_ENGINE": "databricks",
        "DATABRICKS_HOST": fake.url,
        "DATABRICKS_TOKEN": TOKEN,
        "DATABRICKS_CLUSTER_ID": "0101-loopback",
        "PIPELINE_RUN_TIMEOUT_S": timeout_s,
        **FAST,
    }
    return start_devhost(PROJECT_ROOT, env=env, data_dir=data_dir), data_dir


def test_databricks_runs_that_fail_or_time_out_surface_in_the_output(
    start_devhost: StartDevhost, tmp_path: Path, databricks: FakeDatabricks
) -> None:
    databricks.fail_models.add("merchant_daily")
    databricks.hold_models.add("account_daily_spend")
    host, data_dir = _databricks_host(start_devhost, tmp_path, databricks, timeout_s="3")
    _post(host, [_payment("e1", "acct", 12.5, minutes=0)])
    _wait_for_bronze(data_dir, "payment_transaction", 1)

    output = _run(host)["output"]

    gold = output["gold"]
    assert output["engine"] == "databricks" and output["status"] == "failed"
    assert gold["gold/merchant_daily"]["status"] == "failed"
    assert "simulated failure" in gold["gold/merchant_daily"]["message"]
    assert gold["gold/account_daily_spend"]["status"] == "timed_out"
    assert "cancelled after cancel" in gold["gold/account_daily_spend"]["message"]
    assert gold["gold/account_daily_spend"]["polls"] >= 2  # watched with durable timers
    assert gold["gold/item_pairs"]["status"] == "succeeded"
    assert sorted(output["failures"]) == ["gold/account_daily_spend", "gold/merchant_daily"]
    assert databricks.cancelled_models() == ["account_daily_spend"]


def test_cancelling_a_run_cancels_its_remote_gold_runs(
    start_devhost: StartDevhost, tmp_path: Path, databricks: FakeDatabricks
) -> None:
    databricks.hold_models.add("item_pairs")
    host, data_dir = _databricks_host(start_devhost, tmp_path, databricks, timeout_s="600")
    started = requests.post(host.url("/api/pipelines/medallion/runs"), timeout=30).json()
    assert requests.post(host.url("/api/pipelines/medallion/runs"), timeout=30).status_code == 409
    deadline = time.monotonic() + 60
    while "item_pairs" not in {r.payload.get("run_name", "")[5:] for r in databricks.runs.all()}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)  # the model's orchestration is now watching its run

    cancelled = requests.post(
        host.url(f"/api/pipelines/medallion/runs/{started['id']}/cancel"), timeout=30
    )

    assert "gold/item_pairs" in cancelled.json()["cancelled"]
    while (status := requests.get(started["statusQueryGetUri"], timeout=30).json())[
        "runtimeStatus"
    ] != "Completed":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    gold = status["output"]["gold"]
    assert gold["gold/item_pairs"]["status"] == "cancelled"
    # item_pairs is held; a model still running when the cancel came (on a loaded machine) is
    # cancelled with it, and every model cancelled remotely is reported cancelled.
    assert "item_pairs" in databricks.cancelled_models()
    assert all(gold[f"gold/{m}"]["status"] == "cancelled" for m in databricks.cancelled_models())
