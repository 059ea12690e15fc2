"""The pipeline's Delta writes: silver and quarantine MERGEs, and the per-run quality record."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from shared.pipeline.lake import QUALITY_TABLE, QUARANTINE_TABLE, Lake
from shared.pipeline.quarantine import QUARANTINE_SCHEMA

if TYPE_CHECKING:
    from shared.pipeline.silver import SilverOutcome

QUALITY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("table", pa.string()),
        ("rule", pa.string()),
        ("blocking", pa.bool_()),
        ("rows_checked", pa.int64()),
        ("rows_failed", pa.int64()),
        ("passed", pa.bool_()),
        ("detail", pa.string()),
        ("bronze_from_version", pa.int64()),
        ("bronze_to_version", pa.int64()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
    ]
)

# Partition pruning on event_date keeps the MERGE to the days a batch touches. A resend whose
# event time moved to another day would slip past it, so `_unseen` drops the keys silver already
# holds (on any day) first, reading only the key columns.
_SILVER_MATCH = "t.source = s.source AND t.event_id = s.event_id AND t.event_date = s.event_date"
_ROW = "__row"
_KEYS = pa.schema([("source", pa.string()), ("event_id", pa.string())])


def _table(
    lake: Lake, layer: str, name: str, schema: pa.Schema, partition: list[str]
) -> DeltaTable:
    return DeltaTable.create(
        lake.uri(layer, name),
        schema=schema,
        partition_by=partition or None,
        mode="ignore",
        storage_options=lake.options(),
    )


def merge_silver(lake: Lake, table: str, rows: pa.Table) -> int:
    """Insert the rows whose (source, event_id) silver does not have, on any event date (the
    first landing wins); answers how many."""
    existing = lake.open("silver", table)
    if existing is not None:
        rows = _unseen(existing, rows)
        if rows.num_rows == 0:
            return 0
    target = existing or _table(lake, "silver", table, rows.schema, ["event_date"])
    metrics = (
        target.merge(
            source=rows,
            predicate=_SILVER_MATCH,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
        )
        .when_not_matched_insert_all()
        .execute()
    )
    return int(metrics.get("num_target_rows_inserted", 0))


def _unseen(target: DeltaTable, rows: pa.Table) -> pa.Table:
    """The rows whose (source, event_id) is nowhere in `target`, in their order and schema."""
    keys = pa.table(
        {
            "source": rows.column("source").cast(pa.string()),
            "event_id": rows.column("event_id").cast(pa.string()),
            _ROW: pa.array(range(rows.num_rows), pa.int64()),
        }
    )
    known = _known_keys(target, keys.column("event_id").unique())
    if known.num_rows == 0:
        return rows
    seen = keys.join(known, keys=["source", "event_id"], join_type="inner").column(_ROW)
    return rows.filter(pc.invert(pc.is_in(keys.column(_ROW), value_set=seen)))


def _known_keys(target: DeltaTable, ids: pa.Array) -> pa.Table:
    """The (source, event_id) pairs of `target` whose id is one of `ids`. Ids are random, so
    no file or row group could be skipped by its statistics: this scans the ids alone (the
    usual answer is none), then both key columns only when some id is there. The filter runs
    per batch, not as a scan predicate, because delta-rs writes string_view columns whose
    statistics such a predicate cannot compare with plain strings."""
    wanted = ids.cast(pa.string())
    dataset = target.to_pyarrow_dataset()
    # Read to the end: a scan abandoned midway leaves its read-ahead threads running.
    hits = [
        pc.any(pc.is_in(batch.column(0).cast(pa.string()), value_set=wanted)).as_py()
        for batch in dataset.to_batches(columns=["event_id"])
    ]
    if not any(hits):
        return _KEYS.empty_table()
    found = []
    for batch in dataset.to_batches(columns=["source", "event_id"]):
        batch_ids = batch.column(1).cast(pa.string())
        hit = pc.is_in(batch_ids, value_set=wanted)
        if pc.any(hit).as_py():
            source = batch.column(0).cast(pa.string())
            found.append(pa.Table.from_arrays([source, batch_ids], schema=_KEYS).filter(hit))
    return pa.concat_tables(found)


def merge_quarantine(lake: Lake, rows: pa.Table) -> int:
    """Add quarantined rows not already there (a retried run quarantines nothing twice)."""
    target = lake.open("silver", QUARANTINE_TABLE) or _table(
        lake, "silver", QUARANTINE_TABLE, QUARANTINE_SCHEMA, ["event_type"]
    )
    metrics = (
        target.merge(
            source=rows,
            predicate="t.quarantine_key = s.quarantine_key AND t.event_type = s.event_type",
            source_alias="s",
            target_alias="t",
        )
        .when_not_matched_insert_all()
        .execute()
    )
    return int(metrics.get("num_target_rows_inserted", 0))


def append_quality(
    lake: Lake, run_id: str, table: str, outcome: SilverOutcome, now: dt.datetime
) -> None:
    """One row per rule checked in this run of this table."""
    rows = [
        {
            "run_id": run_id,
            "table": table,
            **check.to_json(),
            "bronze_from_version": outcome.bronze_from,
            "bronze_to_version": outcome.bronze_to,
            "checked_at": now,
        }
        for check in outcome.checks
    ]
    write_deltalake(
        lake.uri("silver", QUALITY_TABLE),
        pa.Table.from_pylist(rows, schema=QUALITY_SCHEMA),
        mode="append",
        storage_options=lake.options(),
    )
