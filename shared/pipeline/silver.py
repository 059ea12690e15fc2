"""Build one silver table from the bronze rows added since its watermark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shared.pipeline.delta_writes import append_quality, merge_quarantine, merge_silver
from shared.pipeline.increment import bronze_increment
from shared.pipeline.lake import Lake
from shared.pipeline.quality import (
    CheckResult,
    Freshness,
    RowCountChange,
    freshness_result,
    row_count_result,
    row_result,
)
from shared.pipeline.quarantine import quarantine_rows
from shared.pipeline.specs import SilverSpec
from shared.pipeline.state import PipelineStateStore
from shared.pipeline.typing_sql import FLAG_PREFIX, rules_for, typing_sql

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class SilverOutcome:
    """What one run did to one silver table, as the orchestration reports it (a durable payload:
    `shared.pipeline.payloads` encodes it; `failed_checks` is derived from `checks`)."""

    table: str
    status: str  # built | up_to_date | no_bronze
    bronze_from: int | None = None
    bronze_to: int | None = None
    rows_in: int = 0
    rows_out: int = 0
    duplicates: int = 0
    quarantined: int = 0
    late_rows: int = 0
    checks: list[CheckResult] = field(default_factory=list)
    failed_checks: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        failed = [check.rule for check in self.checks if not check.passed]
        object.__setattr__(self, "failed_checks", failed)


@dataclass
class _Tally:
    rows_in: int = 0
    rows_out: int = 0
    unique: int = 0
    quarantined: int = 0
    late_rows: int = 0
    checked: int = 0
    failed: list[int] = field(default_factory=list)
    newest: dt.datetime | None = None


class SilverBuilder:
    """Typed columns, MERGE on (source, event_id), row rules, quarantine and table rules.

    The watermark moves only after silver, quarantine and the quality record are committed; a
    run that fails before leaves it where it was, and its retry re-reads the same bronze files,
    which the MERGEs make harmless.
    """

    def __init__(
        self,
        lake: Lake,
        state: PipelineStateStore,
        *,
        pipeline: str = "medallion",
        chunk_rows: int = 250_000,
        clock: Clock = utc_now,
    ) -> None:
        self._lake = lake
        self._state = state
        self._pipeline = pipeline
        self._chunk_rows = chunk_rows
        self._clock = clock

    def build(self, spec: SilverSpec, run_id: str) -> SilverOutcome:
        """Process the table's new bronze rows; raises on failure with the watermark unchanged."""
        key = f"silver:{spec.table}"
        stored = self._state.read(self._pipeline, key)
        watermark, etag = stored if stored else ({}, None)
        since = watermark.get("bronze_version")
        bronze_uri = self._lake.uri("bronze", spec.table)
        if self._lake.open("bronze", spec.table) is None:
            return SilverOutcome(spec.table, "no_bronze")
        increment = bronze_increment(bronze_uri, since, self._lake.options())
        if since == increment.to_version:
            return SilverOutcome(spec.table, "up_to_date", since, increment.to_version)
        previous_newest = _parse_time(watermark.get("newest_event_time"))
        now = self._clock()
        rules = rules_for(spec)
        tally = _Tally(failed=[0] * len(rules))
        for chunk in increment.chunks(self._chunk_rows):
            self._process(spec, chunk, run_id, now, previous_newest, tally)
        checks = [
            row_result(rule, tally.checked, failed)
            for rule, failed in zip(rules, tally.failed, strict=True)
        ]
        newest = max((t for t in (previous_newest, tally.newest) if t), default=None)
        for table_rule in spec.table_rules:
            if isinstance(table_rule, Freshness):
                checks.append(freshness_result(table_rule, newest, now, tally.rows_in))
            elif isinstance(table_rule, RowCountChange):
                previous_rows = watermark.get("rows_in")
                checks.append(row_count_result(table_rule, tally.rows_in, previous_rows))
        outcome = SilverOutcome(
            spec.table,
            "built",
            since,
            increment.to_version,
            rows_in=tally.rows_in,
            rows_out=tally.rows_out,
            duplicates=tally.rows_in - tally.rows_out - tally.quarantined,
            quarantined=tally.quarantined,
            late_rows=tally.late_rows,
            checks=checks,
        )
        append_quality(self._lake, run_id, spec.table, outcome, now)
        self._state.write(
            self._pipeline,
            key,
            {
                "bronze_version": increment.to_version,
                "rows_in": tally.rows_in,
                "newest_event_time": newest.isoformat() if newest else None,
                "run_id": run_id,
                "updated_at": now.isoformat(),
            },
            etag,
        )
        return outcome

    def _process(
        self,
        spec: SilverSpec,
        chunk: pa.Table,
        run_id: str,
        now: dt.datetime,
        previous_newest: dt.datetime | None,
        tally: _Tally,
    ) -> None:
        with duckdb.connect() as connection:
            connection.execute("SET TimeZone = 'UTC'")
            connection.register("bronze_chunk", chunk)
            checked = connection.sql(typing_sql(spec, chunk.schema, "bronze_chunk"))
            typed = checked.to_arrow_table()
        flags = [name for name in typed.column_names if name.startswith(FLAG_PREFIX)]
        rules = rules_for(spec)
        blocking = [typed.column(flags[i]) for i, rule in enumerate(rules) if rule.blocking]
        for index, flag in enumerate(flags):
            tally.failed[index] += int(pc.sum(pc.cast(typed.column(flag), pa.int64())).as_py() or 0)
        bad = _any(blocking, typed.num_rows)
        tally.rows_in += chunk.num_rows
        tally.checked += typed.num_rows
        good_rows = typed.filter(pc.invert(bad))
        bad_rows = typed.filter(bad)
        tally.quarantined += bad_rows.num_rows
        newest = pc.max(good_rows.column("event_time")).as_py() if good_rows.num_rows else None
        if newest is not None and (tally.newest is None or newest > tally.newest):
            tally.newest = newest
        if previous_newest is not None and good_rows.num_rows:
            late = pc.less(good_rows.column("event_time"), pa.scalar(previous_newest))
            tally.late_rows += int(pc.sum(pc.cast(late, pa.int64())).as_py() or 0)
        silver_rows = _silver_columns(good_rows, now)
        if silver_rows.num_rows:
            tally.rows_out += merge_silver(self._lake, spec.table, silver_rows)
        if bad_rows.num_rows:
            merge_quarantine(self._lake, quarantine_rows(spec, rules, bad_rows, flags, run_id, now))


def _any(flags: list[pa.ChunkedArray], rows: int) -> pa.ChunkedArray | pa.Array:
    result: pa.ChunkedArray | pa.Array = pa.array([False] * rows, pa.bool_())
    for flag in flags:
        result = pc.or_(result, flag)
    return result


def _silver_columns(rows: pa.Table, now: dt.datetime) -> pa.Table:
    keep = [
        name
        for name in rows.column_names
        if not name.startswith("__raw_") and not name.startswith(FLAG_PREFIX)
    ]
    table = rows.select(keep)
    processed = pa.array([now] * table.num_rows, pa.timestamp("us", tz="UTC"))
    return table.append_column("processed_at", processed)


def _parse_time(value: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
