"""The pipeline's Delta writes: silver and quarantine MERGEs, and the per-run quality record."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pyarrow as pa
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

# Partition pruning on event_date keeps the MERGE to the days a batch touches. An event's
# (source, id) names one occurrence, and its time is part of it, so a resent event has the same day.
_SILVER_MATCH = "t.source = s.source AND t.event_id = s.event_id AND t.event_date = s.event_date"


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
    """Insert the rows whose (source, event_id) silver does not have; answers how many."""
    target = lake.open("silver", table) or _table(
        lake, "silver", table, rows.schema, ["event_date"]
    )
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
