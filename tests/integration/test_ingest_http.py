"""Events over real HTTP through the devhost into bronze: mixed batches, dead letters,
protected card numbers and redelivery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from embedded.eventlog.log import EventLog, event_log_path
from tests.conftest import StartDevhost
from tests.eventdata import card, encoded, interaction, payment, telemetry
from tests.integration.ingest_helpers import (
    TABLES,
    bronze_rows,
    eventually,
    landed_ids,
    start_platform,
)

pytestmark = pytest.mark.integration


def test_a_mixed_batch_lands_exactly_the_valid_events(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    app = start_platform(start_devhost, data_dir)
    lake = str(data_dir / "lake")
    valid = [payment(n) for n in range(1, 6)] + [telemetry(6), interaction(7)]
    invalid: list[Any] = [
        payment(8, card_number="4111111111111112"),
        payment(9, country="XX"),
        telemetry(10, rpm=-5),
        {"specversion": "1.0", "id": "x", "source": "/s", "type": "no.such", "data": {}},
        "not an event",
    ]
    batch = valid[:3] + invalid[:2] + valid[3:] + invalid[2:]
    response = app.post(batch)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == len(valid)
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (3, "invalid_data"),
        (4, "invalid_data"),
        (9, "invalid_data"),
        (10, "unknown_type"),
        (11, "not_an_event"),
    ]
    assert [r["id"] for r in answer["rejected"]] == [e["id"] for e in invalid[:3]] + ["x", None]
    assert all(r["error"] for r in answer["rejected"])

    expected = sorted(e["id"] for e in valid)
    eventually(lambda: sorted(landed_ids(lake)) == expected, what="the valid events in bronze")
    rows = bronze_rows(lake, "payment_transaction")
    assert {r["card_number"] for r in rows}.isdisjoint({card(n) for n in range(1, 6)})
    assert {r["card_last4"] for r in rows} == {card(n)[-4:] for n in range(1, 6)}
    assert all(r["enqueued_time"] and r["ingested_at"] and r["sequence_number"] >= 0 for r in rows)


def test_raw_card_numbers_reach_no_file_under_the_lake(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    app = start_platform(start_devhost, data_dir)
    cards = [card(100 + n) for n in range(20)]
    mistyped = cards[0][:-1] + str((int(cards[0][-1]) + 1) % 10)  # fails Luhn
    events = [payment(100 + n, note=f"card {cards[n]}") for n in range(10)]
    events += [payment(110 + n) for n in range(10)]
    assert app.post(events).json()["accepted"] == 20
    # Another producer writes straight to the hub, bypassing the API's validation.
    with EventLog(event_log_path(data_dir)) as log:
        log.append_batch(
            "events",
            [
                (encoded(payment(200, card_number=mistyped)), None, None),
                (f"garbage {cards[1]}".encode(), None, None),
            ],
        )
    lake = data_dir / "lake"
    eventually(lambda: len(bronze_rows(str(lake), "deadletter")) == 2, what="dead letters")
    eventually(lambda: len(landed_ids(str(lake))) == 20, what="the valid events")
    files = [p for p in lake.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        content = path.read_bytes()
        if path.suffix == ".parquet":
            content += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        for raw in [*cards, mistyped]:
            assert raw.encode() not in content, f"a raw card number is in {path}"
    dead = bronze_rows(str(lake), "deadletter")
    assert {r["reason"] for r in dead} == {"invalid_data", "malformed_json"}


def test_a_redelivered_batch_adds_nothing(start_devhost: StartDevhost, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    app = start_platform(start_devhost, data_dir)
    events = [payment(n) for n in range(30)] + [telemetry(n) for n in range(10)]
    assert app.post(events).json()["accepted"] == 40
    lake = str(data_dir / "lake")
    eventually(lambda: len(landed_ids(lake)) == 40, what="the first delivery")
    app.host.stop()
    with EventLog(event_log_path(data_dir)) as log:  # lose every checkpoint: all is redelivered
        for partition in range(log.ensure_hub("events")):
            log.set_checkpoint("events", "$Default", partition, -1, 0)
    again = start_platform(start_devhost, data_dir)
    with EventLog(event_log_path(data_dir)) as log:
        tails = log.last_sequence_numbers("events")

        def caught_up() -> bool:
            marks = log.checkpoints("events", "$Default")
            return all(
                tail < 0 or (p in marks and marks[p].sequence_number == tail)
                for p, tail in enumerate(tails)
            )

        eventually(caught_up, what="the redelivered batches to be processed")
    assert "already_landed" in again.host.output()
    ids = landed_ids(lake)
    assert sorted(ids) == sorted(e["id"] for e in events)
    for table in TABLES:
        rows = bronze_rows(lake, table)
        assert len({(r["partition"], r["sequence_number"]) for r in rows}) == len(rows)
