"""Landing failures: a value in one row never fails its file; the row is dead-lettered with
the file and line, and the valid rows land."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shared.events.contracts import ContractRegistry
from shared.events.envelope import DecodedEvent
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.bronze import BronzeWriter, Landed, RowsAfter
from shared.lakehouse.bronze_rows import ContractRows
from shared.landing.service import FileLanding
from tests.eventdata import card
from tests.landingdata import csv_bytes, landing, ndjson_bytes, payment_record, table_rows

pytestmark = pytest.mark.unit

KEY = Pseudonymizer(b"k" * 32)
NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
POISON_MERCHANT = "m-poison"
COLUMNS = (*payment_record(0), "time")


class RowsFailingOnOneMerchant(ContractRows):
    """Rows that cannot be built for one merchant: a failure no validator knows about."""

    def table(self, events: Sequence[DecodedEvent], *args: Any) -> pa.Table:
        for event in events:
            if event.envelope.data.merchant_id == POISON_MERCHANT:
                raise ValueError(f"cannot build the row of card {event.envelope.data.card_number}")
        return super().table(events, *args)


def service(lake: Path, **options: Any) -> FileLanding:
    writer = BronzeWriter(str(lake), direct_log=True)
    return FileLanding(ContractRegistry(), KEY, writer, clock=lambda: NOW, **options)


@pytest.mark.parametrize(
    "time", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1960-01-01T00:00:00Z"]
)
@pytest.mark.parametrize("encode", [csv_bytes, ndjson_bytes], ids=["csv", "ndjson"])
def test_a_time_the_lake_cannot_hold_dead_letters_its_row_only(
    tmp_path: Path, time: str, encode: Any
) -> None:
    records = [payment_record(n, time="2024-05-01T09:00:00Z") for n in range(6)]
    records[2]["time"] = time
    data = encode(records, COLUMNS) if encode is csv_bytes else encode(records)
    suffix = ".csv" if encode is csv_bytes else ".ndjson"
    report = service(tmp_path).land(landing(data, path=f"landing/payment.transaction/a{suffix}"))
    assert report.landed == {"payment_transaction": 5, "deadletter": 1}
    assert report.reasons == {"out_of_range": 1}
    [dead] = table_rows(tmp_path, "deadletter")
    line = 4 if encode is csv_bytes else 3
    assert dead["sequence_number"] == line and dead["source"].endswith(f"a{suffix}")
    assert "window" in dead["error"]


def test_a_row_that_cannot_be_built_is_dead_lettered_and_the_others_land(tmp_path: Path) -> None:
    records = [payment_record(n) for n in range(9)]
    records[5]["merchant_id"] = POISON_MERCHANT
    file = landing(csv_bytes(records))
    report = service(tmp_path, row_builder=RowsFailingOnOneMerchant).land(file)
    assert report.landed == {"payment_transaction": 8, "deadletter": 1}
    assert report.reasons == {"processing_error": 1}
    [dead] = table_rows(tmp_path, "deadletter")
    assert dead["reason"] == "processing_error" and dead["sequence_number"] == 7  # the line
    assert dead["source"] == file.path and "ValueError" in dead["error"]
    assert card(5) not in dead["error"] and card(5) not in dead["payload"]
    landed = sorted(r["transaction_id"] for r in table_rows(tmp_path, "payment_transaction"))
    assert landed == sorted(f"tx-{n}" for n in range(9) if n != 5)
    # Landing the file again (a redelivery) adds nothing.
    again = service(tmp_path, row_builder=RowsFailingOnOneMerchant).land(
        landing(csv_bytes(records))
    )
    assert sum(again.landed.values()) == 0


class AppenderRefusingOneMerchant(BronzeWriter):
    """An appender that refuses, for good, any commit holding one merchant's rows."""

    def land(
        self, table: str, schema: pa.Schema, app_id: str, version: int, rows_after: RowsAfter
    ) -> Landed:
        def checked(landed: int | None) -> pa.Table | None:
            rows = rows_after(landed)
            if table == "payment_transaction" and rows is not None:
                if POISON_MERCHANT in rows.column("merchant_id").to_pylist():
                    raise OverflowError("date value out of range")
            return rows

        return super().land(table, schema, app_id, version, checked)


def test_a_row_the_appender_refuses_is_dead_lettered_and_the_others_land(
    tmp_path: Path,
) -> None:
    records = [payment_record(n) for n in range(9)]
    records[5]["merchant_id"] = POISON_MERCHANT
    writer = AppenderRefusingOneMerchant(str(tmp_path))
    land = FileLanding(ContractRegistry(), KEY, writer, clock=lambda: NOW).land
    report = land(landing(csv_bytes(records)))
    assert report.landed == {"payment_transaction": 8, "deadletter": 1}
    assert report.reasons == {"processing_error": 1}
    [dead] = table_rows(tmp_path, "deadletter")
    assert (dead["reason"], dead["sequence_number"]) == ("processing_error", 7)
    assert "OverflowError" in dead["error"] and dead["event_id"].startswith("7-")
    assert sum(land(landing(csv_bytes(records))).landed.values()) == 0  # a redelivery
    assert len(table_rows(tmp_path, "deadletter")) == 1
    assert len(table_rows(tmp_path, "payment_transaction")) == 8
