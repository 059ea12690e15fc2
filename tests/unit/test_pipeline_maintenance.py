"""Nightly maintenance: compaction, Z-order on key columns, vacuum with the retention setting."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from deltalake import DeltaTable

from shared.pipeline.maintenance import MaintenanceResult, MaintenanceTarget
from tests.lakedata import T0, land, medallion_for, payment, read

pytestmark = pytest.mark.unit


def test_maintenance_compacts_orders_and_vacuums_without_changing_data(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    pipeline = medallion_for(lake)
    for batch in range(4):  # four small files in one partition
        land(lake, "payment.transaction", [payment(f"p{batch}", f"a{batch}", 1, T0)])
        pipeline.build_silver("payment_transaction", f"run-{batch}")
    before = sorted(r["event_id"] for r in read(lake, "silver", "payment_transaction"))
    plan = {f"{t.layer}/{t.table}": t for t in pipeline.maintenance_plan()}
    assert plan["silver/payment_transaction"].zorder == ("account_id", "merchant_id")
    assert plan["gold/account_daily_spend"].zorder == ("account_id", "day", "currency")
    assert "silver/quarantine" in plan and "silver/_quality" in plan

    object.__setattr__(pipeline, "vacuum_retention_hours", 0)
    result = pipeline.maintain(plan["silver/payment_transaction"])

    assert result.operation == "z_order"
    assert result.files_removed == 4 and result.files_added == 1
    assert result.vacuumed_files == 4
    table = DeltaTable(f"{lake}/silver/payment_transaction")
    assert len(table.file_uris()) == 1
    assert sorted(r["event_id"] for r in read(lake, "silver", "payment_transaction")) == before


def test_tables_without_keys_are_compacted_and_missing_ones_reported(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    pipeline = medallion_for(lake)
    land(lake, "iot.telemetry", [])
    assert pipeline.maintain(MaintenanceTarget("gold", "item_pairs")).status == "missing"
    for i in range(2):
        land(lake, "payment.transaction", [payment(f"p{i}", "a", 5_000_000, T0)])
        pipeline.build_silver("payment_transaction", f"run-{i}")
    result = pipeline.maintain(MaintenanceTarget("silver", "quarantine"))
    assert result.operation == "compact"
    assert result.vacuumed_files == 0  # the default retention keeps this week's files


def test_two_maintenance_jobs_at_once_keep_every_row_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    pipeline = medallion_for(lake)
    for batch in range(6):
        land(lake, "payment.transaction", [payment(f"p{batch}", f"a{batch}", 1, T0)])
        pipeline.build_silver("payment_transaction", f"run-{batch}")
    before = sorted(r["event_id"] for r in read(lake, "silver", "payment_transaction"))
    target = MaintenanceTarget("silver", "payment_transaction")
    start = threading.Barrier(2)
    results: list[MaintenanceResult] = []

    def maintain() -> None:
        start.wait(10)
        results.append(pipeline.maintain(target))

    jobs = [threading.Thread(target=maintain) for _ in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
    assert len(results) == 2
    assert sorted(r["event_id"] for r in read(lake, "silver", "payment_transaction")) == before
    assert len(DeltaTable(f"{lake}/silver/payment_transaction").file_uris()) == 1
