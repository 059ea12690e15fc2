"""The ingest service: mixed batches, exactly-once on redelivery, and no raw card on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from shared.events.envelope import EventDecoder
from shared.events.ingest import Ingestor, MissingHubPosition, app_id, position_from_metadata
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.bronze import BronzeWriter
from shared.lakehouse.bronze_rows import Position
from tests.eventdata import (
    HubMessage,
    card,
    encoded,
    interaction,
    messages,
    payment,
    protected_data,
    telemetry,
)

pytestmark = pytest.mark.unit

POSITION = Position("local", "events", "$default", 1)


def ingestor(lake: Path) -> Ingestor:
    return Ingestor(
        EventDecoder(), Pseudonymizer(b"k" * 32), BronzeWriter(str(lake), direct_log=True)
    )


def rows(lake: Path, table: str) -> list[dict[str, Any]]:
    return DeltaTable(str(lake / "bronze" / table)).to_pyarrow_table().to_pylist()


def mixed_batch() -> list[bytes]:
    return [
        encoded(payment(1)),
        encoded(telemetry(2)),
        encoded(payment(3, card_number="4111111111111112")),
        encoded(interaction(4)),
        b"{not json",
        encoded(payment(5)),
    ]


def test_a_mixed_batch_lands_valid_events_and_dead_letters(tmp_path: Path) -> None:
    report = ingestor(tmp_path).ingest(POSITION, messages(mixed_batch()))
    assert report.landed == {
        "payment_transaction": 2,
        "iot_telemetry": 1,
        "app_interaction": 1,
        "deadletter": 2,
    }
    assert report.reasons == {"invalid_data": 1, "malformed_json": 1}
    assert [r["sequence_number"] for r in rows(tmp_path, "payment_transaction")] == [0, 5]
    dead = rows(tmp_path, "deadletter")
    assert sorted(r["sequence_number"] for r in dead) == [2, 4]
    assert all(r["error"] for r in dead)


def test_a_redelivered_batch_adds_nothing(tmp_path: Path) -> None:
    service = ingestor(tmp_path)
    service.ingest(POSITION, messages(mixed_batch()))
    again = ingestor(tmp_path).ingest(POSITION, messages(mixed_batch()))  # a new process
    assert sum(again.landed.values()) == 0
    assert again.already_landed == 6
    assert len(rows(tmp_path, "payment_transaction")) == 2
    assert len(rows(tmp_path, "deadletter")) == 2


def test_an_event_sent_twice_lands_twice_each_at_its_hub_position(tmp_path: Path) -> None:
    # Bronze keeps what the hub delivered; exactly-once is per hub position, not per event id.
    # Silver keeps one row per (source, id) (tests/unit/test_pipeline_silver_dedup.py).
    event, other = payment(1), payment(2)
    twice = [encoded(event), encoded(other), encoded(event)]
    report = ingestor(tmp_path).ingest(POSITION, messages(twice))
    assert report.landed == {"payment_transaction": 3}
    landed = [(r["event_id"], r["sequence_number"]) for r in rows(tmp_path, "payment_transaction")]
    first, second = event["id"], other["id"]
    assert sorted(landed, key=lambda pair: pair[1]) == [(first, 0), (second, 1), (first, 2)]


def test_a_batch_overlapping_the_last_one_lands_only_new_events(tmp_path: Path) -> None:
    service = ingestor(tmp_path)
    bodies = [encoded(payment(n)) for n in range(10)]
    service.ingest(POSITION, messages(bodies[:6]))
    report = service.ingest(POSITION, messages(bodies[4:], first_sequence=4))
    assert report.landed == {"payment_transaction": 4} and report.already_landed == 2
    numbers = [r["sequence_number"] for r in rows(tmp_path, "payment_transaction")]
    assert sorted(numbers) == list(range(10))


def test_partitions_are_landed_independently(tmp_path: Path) -> None:
    service = ingestor(tmp_path)
    body = [encoded(payment(1))]
    service.ingest(POSITION, messages(body))
    other = POSITION._replace(partition=2)
    assert service.ingest(other, messages(body)).landed == {"payment_transaction": 1}
    table = DeltaTable(str(tmp_path / "bronze" / "payment_transaction"))
    assert table.transaction_version(app_id(POSITION)) == 0
    assert table.transaction_version(app_id(other)) == 0


def test_no_raw_card_number_reaches_any_file(tmp_path: Path) -> None:
    cards = [card(n) for n in range(20)]
    bodies = [encoded(payment(n, note=f"card {cards[n]}")) for n in range(10)]
    bodies += [encoded(payment(n, currency="ZZZ")) for n in range(10, 20)]
    ingestor(tmp_path).ingest(POSITION, messages(bodies))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        content = path.read_bytes()
        if path.suffix == ".parquet":  # compressed pages: check the decoded values too
            content += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        for raw in cards:
            assert raw.encode() not in content, f"{raw} found in {path}"


def test_an_empty_batch_does_nothing(tmp_path: Path) -> None:
    assert ingestor(tmp_path).ingest(POSITION, []).landed == {}
    assert not (tmp_path / "bronze").exists()


def test_events_without_positions_are_refused(tmp_path: Path) -> None:
    message = HubMessage(encoded(payment()), 0)
    message.sequence_number = None  # type: ignore[assignment]
    with pytest.raises(MissingHubPosition):
        ingestor(tmp_path).ingest(POSITION, [message])


def test_the_position_comes_from_the_partition_context() -> None:
    metadata = {
        "PartitionContext": {
            "FullyQualifiedNamespace": "NS.servicebus.windows.net",
            "EventHubName": "Events",
            "ConsumerGroup": "$Default",
            "PartitionId": "3",
        }
    }
    position = position_from_metadata(metadata)
    assert position == Position("ns.servicebus.windows.net", "events", "$default", 3)
    as_text = {"PartitionContext": json.dumps(metadata["PartitionContext"])}
    assert position_from_metadata(as_text) == position
    assert app_id(position) == "eventhubs:ns.servicebus.windows.net/events/$default/3"
    for broken in (None, {}, {"PartitionContext": {"EventHubName": "x"}}):
        with pytest.raises(MissingHubPosition):
            position_from_metadata(broken)


def test_compaction_covers_every_bronze_table(tmp_path: Path) -> None:
    service = ingestor(tmp_path)
    for start in (0, 6):
        service.ingest(POSITION, messages(mixed_batch(), first_sequence=start))
    compacted = service.compact_bronze()
    assert set(compacted) == {
        "payment_transaction",
        "iot_telemetry",
        "app_interaction",
        "deadletter",
    }
    assert compacted["payment_transaction"]["numFilesRemoved"] == 2
    assert len(rows(tmp_path, "payment_transaction")) == 4
    again = service.ingest(POSITION, messages(mixed_batch(), first_sequence=6))
    assert sum(again.landed.values()) == 0


def protected_body(event: dict[str, Any]) -> bytes:
    """What the intake publishes for `event` (its protected form)."""
    return encoded({**event, "data": protected_data(event)})


def test_protected_and_raw_events_land_together_each_hashed_once(tmp_path: Path) -> None:
    events = [payment(n) for n in range(6)]
    bodies = [protected_body(e) if n % 2 else encoded(e) for n, e in enumerate(events)]
    shielded = [bool(n % 2) for n in range(6)]
    report = ingestor(tmp_path).ingest(POSITION, messages(bodies), shielded)
    assert report.landed == {"payment_transaction": 6}
    landed = rows(tmp_path, "payment_transaction")
    assert [r["sequence_number"] for r in landed] == list(range(6))
    key = Pseudonymizer(b"k" * 32)
    assert [r["card_number"] for r in landed] == [key.pseudonym(card(n)) for n in range(6)]
    assert [r["card_last4"] for r in landed] == [card(n)[-4:] for n in range(6)]


def test_a_protected_event_that_breaks_its_contract_is_dead_lettered_as_it_is(
    tmp_path: Path,
) -> None:
    bad = payment(1, currency="ZZZ")
    raw_card_marked_protected = payment(2, card_number="4111111111111112")  # fails Luhn too
    bodies = [protected_body(bad), encoded(raw_card_marked_protected), protected_body(payment(3))]
    report = ingestor(tmp_path).ingest(POSITION, messages(bodies), [True, True, True])
    assert report.landed == {"payment_transaction": 1, "deadletter": 2}
    dead = sorted(rows(tmp_path, "deadletter"), key=lambda r: r["sequence_number"])
    key = Pseudonymizer(b"k" * 32)
    assert json.loads(dead[0]["payload"])["data"]["card_number"] == key.pseudonym(card(1))
    assert "4111111111111112" not in json.dumps(dead, default=str)
    assert json.loads(dead[1]["payload"])["data"]["card_number"] == key.pseudonym(
        "4111111111111112"
    )
