"""The landing service: files of each format into bronze, exactly once per version, resumable."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from shared.events.contracts import ContractRegistry
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.bronze import BronzeWriter, LakeWriteFailed, Landed, RowsAfter
from shared.landing.service import FILE_CONSUMER, FILE_PARTITION, FileLanding
from tests.eventdata import card
from tests.landingdata import (
    csv_bytes,
    files_containing,
    json_bytes,
    landing,
    ndjson_bytes,
    parquet_bytes,
    payment_record,
    table_rows,
)

pytestmark = pytest.mark.unit

KEY = Pseudonymizer(b"k" * 32)
NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)
BAD_CARD = "4111111111111112"  # fails Luhn


def service(lake: Path, writer: BronzeWriter | None = None, **options: Any) -> FileLanding:
    writer = writer or BronzeWriter(str(lake), direct_log=True)
    return FileLanding(ContractRegistry(), KEY, writer, clock=lambda: NOW, **options)


def mixed_records(count: int = 10) -> list[dict[str, Any]]:
    """`count` payments, every fourth with a card number that fails Luhn."""
    return [
        payment_record(n, card_number=BAD_CARD if n % 4 == 3 else card(n)) for n in range(count)
    ]


FORMATS = {
    ".csv": (csv_bytes, lambda n: n + 2),  # a header, then one row per line
    ".json": (json_bytes, lambda n: n + 2),  # "[" on line 1, one object per line
    ".ndjson": (ndjson_bytes, lambda n: n + 1),
    ".parquet": (parquet_bytes, lambda n: n + 1),  # the row number
}


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_each_format_lands_valid_rows_and_dead_letters_the_rest(
    tmp_path: Path, suffix: str
) -> None:
    encode, line_of = FORMATS[suffix]
    records = mixed_records()
    file = landing(encode(records), path=f"landing/payment.transaction/day1{suffix}")
    report = service(tmp_path).land(file)
    valid = [n for n in range(10) if n % 4 != 3]
    assert report.landed == {"payment_transaction": 8, "deadletter": 2}
    assert report.reasons == {"invalid_data": 2} and report.rejected == 2
    rows = table_rows(tmp_path, "payment_transaction")
    assert sorted(r["sequence_number"] for r in rows) == [line_of(n) for n in valid]
    assert {r["transaction_id"] for r in rows} == {f"tx-{n}" for n in valid}
    row = rows[0]
    assert row["source"] == file.path and row["partition"] == FILE_PARTITION
    assert row["event_time"] == row["enqueued_time"] == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert row["ingested_at"] == NOW and row["event_date"] == dt.date(2024, 5, 1)
    assert row["extensions"] == '{"fileversion": "0x8DC0001"}'
    assert row["event_id"].startswith(f"{row['sequence_number']}-")
    dead = table_rows(tmp_path, "deadletter")
    assert {r["sequence_number"] for r in dead} == {line_of(n) for n in range(10) if n % 4 == 3}
    assert {(r["source"], r["hub"], r["consumer_group"], r["partition"]) for r in dead} == {
        (file.path, "landing", FILE_CONSUMER, FILE_PARTITION)
    }
    assert all(r["namespace"] == "acct" and "Luhn" in r["error"] for r in dead)


def test_no_raw_card_number_reaches_any_lake_file(tmp_path: Path) -> None:
    records = mixed_records(12)
    records.append(payment_record(20, card_number=card(20), note=f"card {card(21)} on file"))
    data = csv_bytes(records, [*records[0], "note"]) + f"{card(22)},short,row\n".encode()
    service(tmp_path).land(landing(data))
    cards = [r["card_number"] for r in records] + [card(21), card(22)]
    assert table_rows(tmp_path, "deadletter")  # the bad rows were written, pseudonymized
    assert files_containing(tmp_path, cards) == []
    rows = table_rows(tmp_path, "payment_transaction")
    assert {r["card_last4"] for r in rows} >= {card(0)[-4:]}


def test_the_same_file_version_delivered_again_adds_nothing(tmp_path: Path) -> None:
    data = csv_bytes(mixed_records())
    service(tmp_path).land(landing(data))
    again = service(tmp_path).land(landing(data))  # a new process: nothing cached
    assert again.landed == {} and again.rejected == 0
    assert again.already_landed == 10 and again.commits == 0
    assert len(table_rows(tmp_path, "payment_transaction")) == 8
    assert len(table_rows(tmp_path, "deadletter")) == 2


def test_a_new_version_of_the_file_lands_again_with_the_same_event_ids(tmp_path: Path) -> None:
    data = csv_bytes(mixed_records())
    service(tmp_path).land(landing(data, etag='"v1"'))
    report = service(tmp_path).land(landing(data, etag='"v2"'))
    assert report.landed == {"payment_transaction": 8, "deadletter": 2}
    ids = Counter(r["event_id"] for r in table_rows(tmp_path, "payment_transaction"))
    assert len(ids) == 8 and set(ids.values()) == {2}  # silver deduplicates on (source, id)


def test_rows_are_committed_in_batches_each_with_its_transaction(tmp_path: Path) -> None:
    data = csv_bytes(payment_record(n) for n in range(35))
    file = landing(data)
    report = service(tmp_path, commit_rows=10).land(file)
    assert report.commits == 4 and report.landed == {"payment_transaction": 35}
    table = DeltaTable(str(tmp_path / "bronze" / "payment_transaction"))
    assert table.transaction_version(file.app_id) == 35  # the last record landed


class FailingWriter(BronzeWriter):
    """The real writer, whose `fail_at`-th land call (counting from 1) fails."""

    def __init__(self, root: str, fail_at: int) -> None:
        super().__init__(root)
        self.fail_at = fail_at
        self.calls: list[str] = []

    def land(
        self, table: str, schema: pa.Schema, app_id: str, version: int, rows_after: RowsAfter
    ) -> Landed:
        self.calls.append(table)
        if len(self.calls) == self.fail_at:
            raise LakeWriteFailed(f"bronze/{table}: the lake went away")
        return super().land(table, schema, app_id, version, rows_after)


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5, 6])
def test_a_landing_that_fails_midway_resumes_without_duplicates(
    tmp_path: Path, fail_at: int
) -> None:
    records = mixed_records(40)
    data = csv_bytes(records)
    broken = FailingWriter(str(tmp_path), fail_at)
    with pytest.raises(LakeWriteFailed):
        service(tmp_path, broken, commit_rows=10).land(landing(data))
    report = service(tmp_path, commit_rows=10).land(landing(data))
    assert report.records == 40
    rows = table_rows(tmp_path, "payment_transaction")
    dead = table_rows(tmp_path, "deadletter")
    assert sorted(r["sequence_number"] for r in rows) == [n + 2 for n in range(40) if n % 4 != 3]
    assert sorted(r["sequence_number"] for r in dead) == [n + 2 for n in range(40) if n % 4 == 3]
    assert report.already_landed + sum(report.landed.values()) == 40


def test_a_minified_json_array_lands_every_object_once_across_a_failure(
    tmp_path: Path,
) -> None:
    data = json_bytes(mixed_records(40)).replace(b"\n", b"")  # every object on line 1
    path = "landing/payment.transaction/min.json"
    broken = service(tmp_path, FailingWriter(str(tmp_path), 5), commit_rows=10)
    with pytest.raises(LakeWriteFailed):
        broken.land(landing(data, path=path))
    report = service(tmp_path, commit_rows=10).land(landing(data, path=path))
    rows = table_rows(tmp_path, "payment_transaction")
    dead = table_rows(tmp_path, "deadletter")
    assert sorted(r["transaction_id"] for r in rows) == sorted(
        f"tx-{n}" for n in range(40) if n % 4 != 3
    )
    assert len(dead) == 10 and {r["sequence_number"] for r in rows + dead} == {1}
    assert len({r["event_id"] for r in rows}) == 30 and report.records == 40


@pytest.mark.parametrize(
    ("path", "reason", "message"),
    [
        ("landing/payment.transactions/day1.csv", "unknown_type", "unknown event type folder"),
        ("landing/day1.csv", "unknown_type", "a folder named after its event type"),
        ("landing/payment.transaction/day1.xlsx", "unsupported_file", "'.xlsx': not one of"),
        ("landing/payment.transaction/day1", "unsupported_file", "'(none)'"),
    ],
)
def test_files_of_no_known_type_or_format_are_dead_lettered_whole(
    tmp_path: Path, path: str, reason: str, message: str
) -> None:
    file = landing(csv_bytes(mixed_records()), path=path)
    report = service(tmp_path).land(file)
    assert report.reasons == {reason: 1} and report.landed == {"deadletter": 1}
    [dead] = table_rows(tmp_path, "deadletter")
    assert dead["sequence_number"] == 0 and dead["source"] == path
    assert message in dead["error"] and dead["reason"] == reason
    assert table_rows(tmp_path, "payment_transaction") == []
    assert service(tmp_path).land(landing(csv_bytes(mixed_records()), path=path)).landed == {}


def test_a_csv_without_a_required_column_is_dead_lettered_whole(tmp_path: Path) -> None:
    columns = ["transaction_id", "account_id", "amount", "currency", "merchant_id", "country"]
    report = service(tmp_path).land(landing(csv_bytes(mixed_records(), columns)))
    assert report.landed == {"deadletter": 1}
    [dead] = table_rows(tmp_path, "deadletter")
    assert dead["reason"] == "invalid_data"
    assert "no column for card_number, merchant_category, channel" in dead["error"]


def test_a_time_column_sets_the_event_time_and_date(tmp_path: Path) -> None:
    records = [payment_record(n, time=f"2024-04-{10 + n}T08:00:00Z") for n in range(3)]
    service(tmp_path).land(landing(csv_bytes(records, [*records[0]])))
    rows = sorted(table_rows(tmp_path, "payment_transaction"), key=lambda r: r["event_date"])
    assert [r["event_date"] for r in rows] == [dt.date(2024, 4, 10 + n) for n in range(3)]
    assert all(r["extras"] is None for r in rows)


def test_a_file_without_a_modified_time_arrives_when_it_is_landed(tmp_path: Path) -> None:
    service(tmp_path).land(landing(csv_bytes([payment_record(1)]), modified=None))
    [row] = table_rows(tmp_path, "payment_transaction")
    assert row["event_time"] == row["enqueued_time"] == NOW
