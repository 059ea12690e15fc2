"""What models learn from: bronze rows as ingested (what serving saw), and silver and gold tables
(labels, co-occurrences), read through DuckDB with the Delta version of each table read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from shared.pipeline.lake import Lake, table_name


class MissingData(LookupError):
    """A table a model needs does not exist yet, or holds too little: the message says what to
    run or post first."""


@dataclass
class Reads:
    """The Delta version of every table read, for the model version's record. With `pinned`
    (`layer.table` -> version, as a model version's `training_data` records them), those tables
    are read as of that version: the data a version was trained on, read again."""

    versions: dict[str, int] = field(default_factory=dict)
    pinned: dict[str, int] = field(default_factory=dict)

    def query(
        self, lake: Lake, layer: str, table: str, sql: str, parameters: Sequence[Any] = ()
    ) -> pa.Table | None:
        """`sql` over the table (named `source` in it); None when the table does not exist."""
        delta = lake.open(layer, table, self.pinned.get(f"{layer}.{table}"))
        if delta is None:
            return None
        self.versions[f"{layer}.{table}"] = delta.version()
        connection = duckdb.connect()
        try:
            connection.register("source", delta.to_pyarrow_dataset())
            return connection.sql(sql, params=list(parameters)).to_arrow_table()
        finally:
            connection.close()


def bronze_rows(
    lake: Lake, reads: Reads, event_type: str, columns: Sequence[str]
) -> list[dict[str, Any]]:
    """A contract's rows as bronze holds them, once per event id (the first landed), in
    event-time order (ties by event id), each with `t` (seconds since the epoch, from the
    timestamp's microseconds, as `features.base.epoch_seconds` computes it online)."""
    selected = ", ".join(f'"{c}"' for c in ("event_id", *columns))
    sql = (
        f"SELECT {selected}, epoch_us(event_time) AS t_us FROM source "
        "QUALIFY row_number() OVER (PARTITION BY event_id "
        "ORDER BY ingested_at, partition, sequence_number) = 1 "
        "ORDER BY event_time, event_id"
    )
    table = reads.query(lake, "bronze", table_name(event_type), sql)
    if table is None:
        raise MissingData(f"no {event_type} events in bronze yet: post some first")
    rows: list[dict[str, Any]] = table.to_pylist()
    for row in rows:
        row["t"] = row.pop("t_us") / 1_000_000
    return rows
