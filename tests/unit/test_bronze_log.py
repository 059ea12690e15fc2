"""Direct appends to the Delta log: valid for any Delta reader, exactly once among writers."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from shared.lakehouse.bronze import BronzeWriter
from shared.lakehouse.delta_append import LocalDeltaLog, NullInRequiredColumn, UnsupportedTable

pytestmark = pytest.mark.unit

TIMESTAMP = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("sequence_number", pa.int64(), nullable=False),
        pa.field("event_time", TIMESTAMP, nullable=False),
        pa.field("amount", pa.float64()),
        pa.field("value", pa.string()),
        pa.field("event_date", pa.date32(), nullable=False),
    ]
)
START = dt.datetime(2024, 5, 1, 23, 59, 59, 999_500, tzinfo=dt.UTC)
CONFIGURATION = {"delta.dataSkippingStatsColumns": "sequence_number,event_time,amount,value"}


def rows(numbers: list[int], step: dt.timedelta = dt.timedelta(microseconds=250)) -> pa.Table:
    times = [START + n * step for n in numbers]
    return pa.table(
        {
            "sequence_number": pa.array(numbers, pa.int64()),
            "event_time": pa.array(times, TIMESTAMP),
            "amount": [float(n) if n % 3 else None for n in numbers],
            "value": [f"v{n}" for n in numbers],
            "event_date": pa.array([t.date() for t in times], pa.date32()),
        },
        schema=SCHEMA,
    )


def always(table: pa.Table) -> Callable[[int | None], pa.Table]:
    return lambda landed: table


def writer(root: Path, **options: object) -> BronzeWriter:
    options = {"direct_log": True, **options}
    return BronzeWriter(str(root), configuration=CONFIGURATION, **options)  # type: ignore[arg-type]


def log_lines(table: Path, version: int) -> list[dict[str, Any]]:
    text = (table / "_delta_log" / f"{version:020d}.json").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_appends_are_read_back_by_deltalake_with_their_txn(tmp_path: Path) -> None:
    bronze = writer(tmp_path)
    bronze.land("t", SCHEMA, "p0", 4, lambda landed: rows([0, 1, 2, 3, 4]))
    table = DeltaTable(bronze.uri("t"))
    assert table.version() == 1
    assert table.transaction_version("p0") == 4
    assert table.to_pyarrow_table().sort_by("sequence_number") == rows([0, 1, 2, 3, 4])
    commit = log_lines(Path(bronze.uri("t")), 1)
    assert commit[0]["commitInfo"]["operation"] == "WRITE"
    assert commit[1]["txn"]["appId"] == "p0" and commit[1]["txn"]["version"] == 4


def test_a_batch_across_midnight_lands_one_file_per_date(tmp_path: Path) -> None:
    bronze = writer(tmp_path)
    bronze.land("t", SCHEMA, "p0", 5, lambda landed: rows([0, 1, 2, 3, 4, 5]))
    actions = pa.table(DeltaTable(bronze.uri("t")).get_add_actions(flatten=True)).to_pylist()
    by_date = {a["partition.event_date"]: a for a in actions}
    assert sorted(by_date) == [dt.date(2024, 5, 1), dt.date(2024, 5, 2)]
    assert [by_date[d]["num_records"] for d in sorted(by_date)] == [2, 4]
    data = DeltaTable(bronze.uri("t")).to_pyarrow_table()
    assert sorted(data.column("sequence_number").to_pylist()) == list(range(6))


def test_file_statistics_bound_the_values(tmp_path: Path) -> None:
    bronze = writer(tmp_path)
    numbers = [7, 8, 9, 10, 11]
    bronze.land("t", SCHEMA, "p0", 11, lambda landed: rows(numbers, dt.timedelta(seconds=1)))
    (stats,) = [
        json.loads(line["add"]["stats"])
        for line in log_lines(Path(bronze.uri("t")), 1)
        if "add" in line
    ]
    assert stats["numRecords"] == 5
    assert (stats["minValues"]["sequence_number"], stats["maxValues"]["sequence_number"]) == (
        7,
        11,
    )
    # Delta keeps milliseconds: the bounds are widened, never narrowed.
    first, last = START + dt.timedelta(seconds=7), START + dt.timedelta(seconds=11)
    low = dt.datetime.fromisoformat(stats["minValues"]["event_time"])
    high = dt.datetime.fromisoformat(stats["maxValues"]["event_time"])
    assert low <= first < low + dt.timedelta(milliseconds=1)
    assert high - dt.timedelta(milliseconds=1) < last <= high
    assert (stats["minValues"]["amount"], stats["maxValues"]["amount"]) == (7.0, 11.0)
    assert stats["nullCount"] == {"sequence_number": 0, "event_time": 0, "amount": 1, "value": 0}
    assert (stats["minValues"]["value"], stats["maxValues"]["value"]) == ("v10", "v9")
    skipped = DeltaTable(bronze.uri("t")).to_pyarrow_table(filters=[("sequence_number", ">", 11)])
    assert skipped.num_rows == 0


def test_another_writer_committing_first_costs_a_retry_not_a_duplicate(tmp_path: Path) -> None:
    bronze = writer(tmp_path)
    bronze.land("t", SCHEMA, "p0", 1, lambda landed: rows([0, 1]))
    uri = bronze.uri("t")
    # deltalake lands p1 and p0's next batch behind the direct writer's back.
    write_deltalake(
        uri,
        rows([2, 3]),
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction("p0", 3)]),
    )
    write_deltalake(
        uri,
        rows([100]),
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction("p1", 100)]),
    )
    built: list[int | None] = []

    def after(landed: int | None) -> pa.Table | None:
        built.append(landed)
        kept = [n for n in (2, 3, 4, 5) if landed is None or n > landed]
        return rows(kept) if kept else None

    assert bronze.land("t", SCHEMA, "p0", 5, after).rows == 2
    assert built == [1, 3]  # built once from the stale state, once after catching up
    table = DeltaTable(uri)
    assert sorted(table.to_pyarrow_table().column("sequence_number").to_pylist()) == [
        0,
        1,
        2,
        3,
        4,
        5,
        100,
    ]
    assert (table.transaction_version("p0"), table.transaction_version("p1")) == (5, 100)
    parquet = {p.name for p in Path(uri).rglob("*.parquet")}
    assert parquet == {Path(u).name for u in table.file_uris()}  # the discarded file is gone


def test_a_commit_of_other_app_ids_first_keeps_the_written_files(tmp_path: Path) -> None:
    bronze = writer(tmp_path)
    bronze.land("t", SCHEMA, "p0", 0, lambda landed: rows([0]))
    write_deltalake(
        bronze.uri("t"),
        rows([50]),
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction("p1", 50)]),
    )
    built: list[int | None] = []

    def after(landed: int | None) -> pa.Table:
        built.append(landed)
        return rows([1])

    assert bronze.land("t", SCHEMA, "p0", 1, after).rows == 1
    assert built == [0]
    assert DeltaTable(bronze.uri("t")).version() == 3


def test_a_schema_change_by_another_writer_reloads_the_table(tmp_path: Path) -> None:
    bronze = writer(tmp_path, retry_delay_s=0.0)
    bronze.land("t", SCHEMA, "p0", 0, lambda landed: rows([0]))
    wider = rows([1]).append_column("added", pa.array(["x"]))
    write_deltalake(bronze.uri("t"), wider, mode="append", schema_mode="merge")
    # The direct commit finds the schema change in the version it lost, and starts over.
    assert bronze.land("t", SCHEMA, "p0", 2, lambda landed: rows([2])).rows == 1
    widest = rows([3]).append_column("added", pa.array(["y"]))
    assert bronze.land("t", widest.schema, "p0", 3, lambda landed: widest).rows == 1
    data = DeltaTable(bronze.uri("t")).to_pyarrow_table().sort_by("sequence_number")
    assert data.column("added").to_pylist() == [None, "x", None, "y"]


def test_checkpoints_follow_the_table_interval(tmp_path: Path) -> None:
    bronze = BronzeWriter(
        str(tmp_path),
        configuration={**CONFIGURATION, "delta.checkpointInterval": "3"},
        direct_log=True,
    )
    for n in range(7):
        bronze.land("t", SCHEMA, "p0", n, always(rows([n])))
    log = Path(bronze.uri("t")) / "_delta_log"
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == [
        f"{3:020d}.checkpoint.parquet",
        f"{6:020d}.checkpoint.parquet",
    ]
    table = DeltaTable(bronze.uri("t"))
    assert (table.version(), table.transaction_version("p0")) == (7, 6)
    assert table.to_pyarrow_table().num_rows == 7


def test_nulls_in_a_required_column_are_refused(tmp_path: Path) -> None:
    bronze = writer(tmp_path)
    bronze.land("t", SCHEMA, "p0", 0, lambda landed: rows([0]))
    broken = rows([1]).set_column(0, SCHEMA.field(0), pa.array([None], pa.int64()))
    with pytest.raises(NullInRequiredColumn, match="sequence_number"):
        bronze.land("t", SCHEMA, "p0", 1, lambda landed: broken)
    assert DeltaTable(bronze.uri("t")).version() == 1
    assert len(list(Path(bronze.uri("t")).rglob("*.parquet"))) == 1


def test_tables_with_features_it_does_not_write_go_through_deltalake(tmp_path: Path) -> None:
    uri = str(tmp_path / "bronze" / "t")
    DeltaTable.create(uri, SCHEMA, partition_by=["event_date"])
    DeltaTable(uri).alter.add_constraint({"sequence_not_negative": "sequence_number >= 0"})
    with pytest.raises(UnsupportedTable, match="check constraints"):
        LocalDeltaLog(Path(uri), DeltaTable(uri))
    bronze = writer(tmp_path)
    assert bronze.land("t", SCHEMA, "p0", 1, lambda landed: rows([0, 1])).rows == 2
    assert bronze.land("other", SCHEMA, "p0", 1, lambda landed: rows([0])).rows == 1
    assert bronze.landed_version("t", "p0") == 1
    assert DeltaTable(uri).transaction_version("p0") == 1
    # The table falls back alone: the other keeps its direct appends.
    assert bronze._tables["t"].direct is None and bronze._tables["other"].direct is not None


def test_change_data_feed_tables_take_direct_appends_the_feed_sees(tmp_path: Path) -> None:
    bronze = BronzeWriter(
        str(tmp_path),
        configuration={**CONFIGURATION, "delta.enableChangeDataFeed": "true"},
        direct_log=True,
    )
    bronze.land("t", SCHEMA, "p0", 1, lambda landed: rows([0, 1]))
    bronze.land("t", SCHEMA, "p0", 2, lambda landed: rows([2]))
    uri = Path(bronze.uri("t"))
    assert DeltaTable(str(uri)).protocol().min_writer_version == 4
    (commit,) = [line for line in log_lines(uri, 2) if "commitInfo" in line]
    assert "delta-rs" not in str(commit["commitInfo"]), "the direct appender wrote it"
    feed = pa.table(DeltaTable(str(uri)).load_cdf(starting_version=2).read_all())
    assert feed.column("sequence_number").to_pylist() == [2]
    assert set(feed.column("_change_type").to_pylist()) == {"insert"}


def test_deltalake_writes_when_direct_appends_are_off(tmp_path: Path) -> None:
    bronze = writer(tmp_path, direct_log=False)
    bronze.land("t", SCHEMA, "p0", 1, lambda landed: rows([0, 1]))
    (commit,) = [line for line in log_lines(Path(bronze.uri("t")), 1) if "commitInfo" in line]
    assert "delta-rs" in str(commit["commitInfo"])


def test_a_writer_behind_a_log_clean_up_reloads_the_table(tmp_path: Path) -> None:
    bronze = writer(tmp_path, retry_delay_s=0.0)
    bronze.land("t", SCHEMA, "p0", 0, lambda landed: rows([0]))
    uri = bronze.uri("t")
    for n in (1, 2):
        transaction = Transaction("p0", n)
        write_deltalake(
            uri,
            rows([n]),
            mode="append",
            commit_properties=CommitProperties(app_transactions=[transaction]),
        )
    DeltaTable(uri).create_checkpoint()
    for version in (0, 1, 2):  # what log clean-up deletes once a checkpoint covers it
        (Path(uri) / "_delta_log" / f"{version:020d}.json").unlink()
    assert bronze.land("t", SCHEMA, "p0", 3, lambda landed: rows([3])).rows == 1
    table = DeltaTable(uri)
    assert table.version() == 4 and table.transaction_version("p0") == 3
    assert sorted(table.to_pyarrow_table().column("sequence_number").to_pylist()) == [0, 1, 2, 3]


def test_without_hard_links_deltalake_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bronze = writer(tmp_path)
    bronze.land("t", SCHEMA, "p0", 0, always(rows([0])))

    def refuse(source: object, target: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refuse)
    assert bronze.land("t", SCHEMA, "p0", 2, always(rows([1, 2]))).rows == 2
    assert bronze.land("t", SCHEMA, "p0", 3, always(rows([3]))).rows == 1
    table = DeltaTable(bronze.uri("t"))
    assert (table.version(), table.transaction_version("p0")) == (3, 3)
    assert sorted(table.to_pyarrow_table().column("sequence_number").to_pylist()) == [0, 1, 2, 3]
    assert not list((Path(bronze.uri("t")) / "_delta_log").glob("_commit_*"))


def test_data_and_commit_are_on_disk_before_and_after_the_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power loss must never leave a visible version whose files are missing: each Parquet
    file, its folder (and a new folder's parent) and the commit are synced before the link
    makes the version visible, and the log folder after it."""
    bronze = writer(tmp_path)
    bronze.land("t", SCHEMA, "p0", 0, always(rows([0])))
    table = Path(bronze.uri("t"))
    events: list[tuple[str, str]] = []
    fsync, link = os.fsync, os.link

    def synced(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def linked(source: Any, target: Any, **options: Any) -> None:
        link(source, target, **options)
        events.append(("link", str(target)))

    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(os, "link", linked)
    day = dt.timedelta(days=1)
    bronze.land("t", SCHEMA, "p0", 2, always(rows([1, 2], step=day)))  # a new date partition
    linked_at = events.index(("link", str(table / "_delta_log" / f"{2:020d}.json")))
    before = {path for _, path in events[:linked_at]}
    new_files = [f["add"]["path"] for f in log_lines(table, 2) if "add" in f]
    assert len(new_files) == 2
    for path in new_files:
        assert str(table / path) in before
        assert str((table / path).parent) in before
    assert str(table) in before  # the new partition folder's entry
    assert any(p.startswith(str(table / "_delta_log" / "_commit_")) for p in before)
    assert ("fsync", str(table / "_delta_log")) in events[linked_at:]
