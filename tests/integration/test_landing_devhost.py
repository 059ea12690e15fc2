"""Files dropped in the devhost's landing container land in bronze through the real app."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.eventdata import card
from tests.integration.ingest_helpers import eventually
from tests.landingdata import (
    csv_bytes,
    files_containing,
    json_bytes,
    ndjson_bytes,
    parquet_bytes,
    payment_record,
    table_rows,
)

pytestmark = pytest.mark.integration

BAD_CARD = "4111111111111112"


def start(start_devhost: StartDevhost, data_dir: Path) -> DevhostProcess:
    env = {
        "PLATFORM_DATA_DIR": str(data_dir),
        "DEVHOST_BLOB_POLL_INTERVAL_S": "0.1",
        "AzureWebJobs.hourly_pipeline_run.Disabled": "true",
        "AzureWebJobs.nightly_table_maintenance.Disabled": "true",
    }
    return start_devhost(PROJECT_ROOT, env=env, data_dir=data_dir)


def drop(data_dir: Path, blob: str, data: bytes) -> None:
    """Write the blob beside its final name, then rename it in, as careful uploaders do."""
    path = data_dir / "blobs" / blob
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.rename(path)


def settled(data_dir: Path) -> dict[str, str]:
    """The blobs `land_file` has finished with, and how (done or poison)."""
    with closing(sqlite3.connect(data_dir / "devhost" / "blob_receipts.sqlite3")) as db:
        rows = db.execute(
            "SELECT blob, status FROM receipts WHERE function = 'land_file' AND status != 'pending'"
        ).fetchall()
    return dict(rows)


def test_dropped_files_land_once_and_bad_records_are_dead_lettered(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    lake = data_dir / "lake"
    host = start(start_devhost, data_dir)
    payments = [payment_record(n, note=f"n{n}") for n in range(20)]
    payments[5]["card_number"] = BAD_CARD
    payments[9]["amount"] = "lots"
    telemetry = [
        {"device_id": f"d{n}", "temperature_c": 20 + n, "vibration_mm_s": 1.5}
        | {"pressure_kpa": 101.3, "rpm": 1500.0}
        for n in range(5)
    ]
    interactions = [
        {"user_id": "u1", "item_id": f"i{n}", "action": "view", "session_id": "s1"}
        for n in range(4)
    ]
    interactions.append({"user_id": "u1", "item_id": "i9", "action": "stare", "session_id": "s1"})
    files = {
        "landing/payment.transaction/2024/day1.csv": csv_bytes(payments, [*payments[0]]),
        "landing/payment.transaction/day2.parquet": parquet_bytes(
            [payment_record(n) for n in range(100, 103)]
        ),
        "landing/iot.telemetry/readings.ndjson": ndjson_bytes(telemetry) + b"{broken\n",
        "landing/app.interaction/clicks.json": json_bytes(interactions),
        "landing/payment.transfer/day1.csv": csv_bytes(payments[:2]),
        "landing/payment.transaction/notes.txt": b"call me",
    }
    for blob, data in files.items():
        drop(data_dir, blob, data)
    eventually(lambda: len(settled(data_dir)) == len(files), 60, "every file landed")
    assert set(settled(data_dir).values()) == {"done"}

    paid = table_rows(lake, "payment_transaction")
    by_file = Counter(r["source"] for r in paid)
    assert by_file == {
        "landing/payment.transaction/2024/day1.csv": 18,
        "landing/payment.transaction/day2.parquet": 3,
    }
    assert {r["transaction_id"] for r in paid} >= {"tx-0", "tx-19", "tx-100"}
    assert len(table_rows(lake, "iot_telemetry")) == 5
    assert len(table_rows(lake, "app_interaction")) == 4
    dead = {(r["source"], r["sequence_number"]): r for r in table_rows(lake, "deadletter")}
    assert set(dead) == {
        ("landing/payment.transaction/2024/day1.csv", 7),  # line 7: payments[5]
        ("landing/payment.transaction/2024/day1.csv", 11),
        ("landing/iot.telemetry/readings.ndjson", 6),
        ("landing/app.interaction/clicks.json", 6),
        ("landing/payment.transfer/day1.csv", 0),
        ("landing/payment.transaction/notes.txt", 0),
    }
    assert "Luhn" in dead[("landing/payment.transaction/2024/day1.csv", 7)]["error"]
    assert dead[("landing/payment.transfer/day1.csv", 0)]["reason"] == "unknown_type"
    assert dead[("landing/payment.transaction/notes.txt", 0)]["reason"] == "unsupported_file"
    cards = [p["card_number"] for p in payments] + [card(n) for n in range(100, 103)]
    assert files_containing(lake, cards) == []
    assert not any(c in host.output() for c in cards)
    logged = [
        json.loads(line.partition(" functions.landing ")[2])
        for line in host.output().splitlines()
        if " functions.landing " in line
    ]
    assert sorted(entry["file"] for entry in logged) == sorted(files)  # a line per file

    # Redelivery of the same versions (the receipts lost): the lake adds nothing.
    assert host.stop() == 0
    (data_dir / "devhost" / "blob_receipts.sqlite3").unlink()
    start(start_devhost, data_dir)
    eventually(lambda: len(settled(data_dir)) == len(files), 60, "every file delivered again")
    assert Counter(r["source"] for r in table_rows(lake, "payment_transaction")) == by_file
    assert len(table_rows(lake, "deadletter")) == len(dead)
    assert len(table_rows(lake, "iot_telemetry")) == 5


@pytest.mark.slow
def test_a_file_landing_when_the_host_is_killed_lands_once_after_the_restart(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    lake = data_dir / "lake"
    from benchmarks.landing_data import BAD_EVERY, write_payments_csv

    blob = "landing/payment.transaction/big.csv"
    path = data_dir / "blobs" / blob
    path.parent.mkdir(parents=True)
    generated, bad = write_payments_csv(path.with_name("big.partial"), 25)
    path.with_name("big.partial").rename(path)
    host = start(start_devhost, data_dir)
    eventually(lambda: 0 < len(table_rows(lake, "payment_transaction")), 120, "a first commit")
    host.kill()
    assert len(table_rows(lake, "payment_transaction")) < generated - bad, "killed too late"
    start(start_devhost, data_dir)
    eventually(lambda: settled(data_dir) == {blob: "done"}, 180, "the file landed")
    rows = table_rows(lake, "payment_transaction")
    assert len(rows) == generated - bad == len({r["event_id"] for r in rows})
    assert sorted(r["sequence_number"] for r in table_rows(lake, "deadletter")) == [
        line for line in range(2, generated + 2) if (line - 2) % 9_973 % BAD_EVERY == 999
    ]
