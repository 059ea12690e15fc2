"""Ingest failures: an event that fails for good is dead-lettered and its partition moves on;
a failure of the lake raises, so that the batch is delivered again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from shared.events.envelope import EventDecoder
from shared.events.ingest import Ingestor, app_id
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.bronze import BronzeWriter, Landed, RowsAfter
from shared.lakehouse.bronze_rows import ContractRows, Position
from tests.eventdata import card, encoded, messages, payment, telemetry

pytestmark = pytest.mark.unit

POSITION = Position("local", "events", "$default", 3)
POISON_DEVICE = "dev-poison"
PSEUDONYMIZER = Pseudonymizer(b"k" * 32)


class RowsFailingOnOneDevice(ContractRows):
    """Rows that cannot be built for one device: a failure no validator knows about."""

    def build(self, envelopes: Sequence[Any], *args: Any, **options: Any) -> pa.Table:
        for envelope in envelopes:
            if getattr(envelope.data, "device_id", None) == POISON_DEVICE:
                raise ValueError(f"cannot build the row of card {card(99)}")
        return super().build(envelopes, *args, **options)


class AppenderRefusingOneDevice(BronzeWriter):
    """An appender that refuses, for good, any commit holding one device's rows."""

    def land(
        self, table: str, schema: pa.Schema, app_id: str, version: int, rows_after: RowsAfter
    ) -> Landed:
        def checked(landed: int | None) -> pa.Table | None:
            rows = rows_after(landed)
            if table == "iot_telemetry" and rows is not None:
                if POISON_DEVICE in rows.column("device_id").to_pylist():
                    raise OverflowError("date value out of range")
            return rows

        return super().land(table, schema, app_id, version, checked)


class UnreachableLake(BronzeWriter):
    def land(self, *args: Any, **kwargs: Any) -> Landed:
        raise ConnectionError("the lake is unreachable")


def rows(lake: Path, table: str) -> list[dict[str, Any]]:
    return DeltaTable(str(lake / "bronze" / table)).to_pyarrow_table().to_pylist()


def batch_with_poison(first: int = 0) -> list[bytes]:
    bodies = [encoded(telemetry(n)) for n in range(first, first + 7)]
    bodies[4] = encoded(telemetry(first + 4, device_id=POISON_DEVICE))
    bodies[1] = encoded(telemetry(first + 1, note="an extra field"))
    bodies[6] = encoded({**telemetry(first + 6), "traceparent": "00-1-2-01"})
    return bodies


@pytest.mark.parametrize(
    ("builder", "writer"),
    [(RowsFailingOnOneDevice, BronzeWriter), (ContractRows, AppenderRefusingOneDevice)],
    ids=["row builder", "appender"],
)
def test_an_event_failing_for_an_unknown_reason_is_dead_lettered_and_the_partition_moves_on(
    tmp_path: Path, builder: type[ContractRows], writer: type[BronzeWriter]
) -> None:
    service = Ingestor(EventDecoder(), PSEUDONYMIZER, writer(str(tmp_path)), row_builder=builder)
    report = service.ingest(POSITION, messages(batch_with_poison()))
    assert report.landed["iot_telemetry"] == 6
    assert report.reasons == {"processing_error": 1}
    [dead] = rows(tmp_path, "deadletter")
    assert (dead["reason"], dead["partition"], dead["sequence_number"], dead["offset"]) == (
        "processing_error",
        3,
        4,
        400,
    )
    assert dead["hub"] == "events" and dead["consumer_group"] == "$default"
    assert "Error" in dead["error"] and card(99) not in dead["error"]
    assert POISON_DEVICE in dead["payload"]
    # The partition moves on: the next batch lands, and redelivering this one adds nothing.
    later = service.ingest(POSITION, messages([encoded(telemetry(n)) for n in range(3)], 7))
    assert later.landed == {"iot_telemetry": 3}
    again = service.ingest(POSITION, messages(batch_with_poison()))
    assert sum(again.landed.values()) == 0
    landed = {r["sequence_number"]: r for r in rows(tmp_path, "iot_telemetry")}
    assert sorted(landed) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert landed[1]["extras"] == '{"note":"an extra field"}' and landed[2]["extras"] is None
    assert landed[6]["extensions"] == '{"traceparent":"00-1-2-01"}'
    assert len(rows(tmp_path, "deadletter")) == 1
    table = DeltaTable(str(tmp_path / "bronze" / "iot_telemetry"))
    assert table.transaction_version(app_id(POSITION)) == 9


def test_a_batch_whose_every_event_fails_lands_them_all_as_dead_letters(tmp_path: Path) -> None:
    service = Ingestor(
        EventDecoder(),
        PSEUDONYMIZER,
        BronzeWriter(str(tmp_path), direct_log=True),
        row_builder=RowsFailingOnOneDevice,
    )
    bodies = [encoded(telemetry(n, device_id=POISON_DEVICE)) for n in range(4)]
    report = service.ingest(POSITION, messages(bodies))
    assert report.reasons == {"processing_error": 4}
    assert sorted(r["sequence_number"] for r in rows(tmp_path, "deadletter")) == [0, 1, 2, 3]


def test_a_lake_failure_raises_and_dead_letters_nothing(tmp_path: Path) -> None:
    service = Ingestor(EventDecoder(), PSEUDONYMIZER, UnreachableLake(str(tmp_path)))
    with pytest.raises(ConnectionError):
        service.ingest(POSITION, messages(batch_with_poison()))
    assert not (tmp_path / "bronze").exists()


@pytest.mark.parametrize(
    "time", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z"]
)
def test_an_event_time_the_lake_cannot_hold_is_dead_lettered_out_of_range(
    tmp_path: Path, time: str
) -> None:
    service = Ingestor(EventDecoder(), PSEUDONYMIZER, BronzeWriter(str(tmp_path), direct_log=True))
    bodies = [encoded(telemetry(1)), encoded(telemetry(2, **{})), encoded(payment(3))]
    poisoned = telemetry(2)
    poisoned["time"] = time
    bodies[1] = encoded(poisoned)
    report = service.ingest(POSITION, messages(bodies))
    assert report.landed == {"iot_telemetry": 1, "payment_transaction": 1, "deadletter": 1}
    assert report.reasons == {"out_of_range": 1}
    [dead] = rows(tmp_path, "deadletter")
    assert dead["sequence_number"] == 1 and "window" in dead["error"]


def test_an_event_time_beyond_the_clock_skew_is_out_of_range(tmp_path: Path) -> None:
    now = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    decoder = EventDecoder(clock=lambda: now)
    service = Ingestor(decoder, PSEUDONYMIZER, BronzeWriter(str(tmp_path), direct_log=True))
    soon, late = telemetry(1), telemetry(2)
    soon["time"] = "2024-05-02T11:59:59Z"
    late["time"] = "2024-05-02T12:00:01Z"
    report = service.ingest(POSITION, messages([encoded(soon), encoded(late)]))
    assert report.landed["iot_telemetry"] == 1 and report.reasons == {"out_of_range": 1}


class CrashAfterThePoison(AppenderRefusingOneDevice):
    """Goes away (a transient failure) when it first comes to land the rows after the poison."""

    crashed = False

    def land(
        self, table: str, schema: pa.Schema, app_id: str, version: int, rows_after: RowsAfter
    ) -> Landed:
        part = rows_after(None)
        after = part is not None and min(part.column("sequence_number").to_pylist()) == 5
        if table == "iot_telemetry" and after and not self.crashed:
            self.crashed = True
            raise ConnectionError("the lake went away")
        return super().land(table, schema, app_id, version, rows_after)


def test_a_refused_row_is_dead_lettered_once_across_a_failure_after_it(tmp_path: Path) -> None:
    crashing = Ingestor(EventDecoder(), PSEUDONYMIZER, CrashAfterThePoison(str(tmp_path)))
    with pytest.raises(ConnectionError):
        crashing.ingest(POSITION, messages(batch_with_poison()))
    [dead] = rows(tmp_path, "deadletter")  # committed before the rows after it
    assert dead["sequence_number"] == 4
    again = Ingestor(EventDecoder(), PSEUDONYMIZER, AppenderRefusingOneDevice(str(tmp_path)))
    report = again.ingest(POSITION, messages(batch_with_poison()))
    assert report.landed.get("deadletter", 0) == 0
    assert len(rows(tmp_path, "deadletter")) == 1
    landed = sorted(r["sequence_number"] for r in rows(tmp_path, "iot_telemetry"))
    assert landed == [0, 1, 2, 3, 5, 6]
