"""The history of monitoring runs: one row per run in the Delta table gold/model_monitoring,
partitioned by model, with the report's headline columns beside its full JSON.

Runs append (the timer's and the HTTP route's at once, from several instances): Delta's blind
appends do not conflict. Creating the table does, so it is created first, on its own, and a
creation lost to another writer's is taken as done.

Nothing personal is kept: a report holds feature names, counts, rates and statistics, the
contract's bounds and reasons written from those (`shared.monitoring.report`), never an entity
key or a row's value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import msgspec
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from shared.monitoring.report import MonitoringReport
from shared.pipeline.lake import Lake

LAYER, TABLE = "gold", "model_monitoring"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
UTC = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_version", pa.int32()),
        pa.field("run_at", UTC, nullable=False),
        pa.field("window_start", UTC),
        pa.field("window_end", UTC),
        pa.field("action", pa.string(), nullable=False),
        pa.field("dataset_drift", pa.bool_(), nullable=False),
        pa.field("drifting_features", pa.int32(), nullable=False),
        pa.field("reasons", pa.list_(pa.string())),
        pa.field("report", pa.string(), nullable=False),  # the MonitoringReport's JSON
        pa.field("trigger", pa.string(), nullable=False),
    ]
)


class NaiveRunTime(ValueError):
    """A run time without a time zone."""


@dataclass(frozen=True)
class MonitoringRun:
    """A run as the history keeps it: the report, when it ran and what started it."""

    report: MonitoringReport
    run_at: dt.datetime
    trigger: str


class MonitoringHistory:
    """gold/model_monitoring in `lake`."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    @property
    def uri(self) -> str:
        return self.lake.uri(LAYER, TABLE)

    def append(self, report: MonitoringReport, run_at: dt.datetime, trigger: str) -> None:
        """Add one run (`trigger`: what started it, e.g. `timer` or `http`)."""
        if run_at.tzinfo is None:
            raise NaiveRunTime("a run time needs a time zone")
        row = {
            "model": report.model,
            "model_version": report.model_version,
            "run_at": run_at,
            "window_start": report.current.start,
            "window_end": report.current.end,
            "action": report.action,
            "dataset_drift": report.dataset_drift,
            "drifting_features": report.drifting_features,
            "reasons": list(report.reasons),
            "report": report.to_json().decode(),
            "trigger": trigger,
        }
        self._create()
        write_deltalake(
            self.uri,
            pa.Table.from_pylist([row], schema=SCHEMA),
            mode="append",
            storage_options=self.lake.options(),
        )

    def latest(self, model: str, limit: int = 24) -> list[MonitoringRun]:
        """The model's newest runs, newest first, at most `limit`; [] before the first run."""
        table = self.lake.open(LAYER, TABLE)
        if table is None or limit <= 0:
            return []
        connection = duckdb.connect()
        try:
            connection.register("runs", table.to_pyarrow_dataset())
            found = connection.sql(
                "SELECT report, epoch_us(run_at) AS run_us, trigger FROM runs WHERE model = ? "
                "ORDER BY run_at DESC LIMIT ?",
                params=[model, limit],
            ).fetchall()
        finally:
            connection.close()
        return [
            MonitoringRun(
                msgspec.json.decode(report, type=MonitoringReport),
                EPOCH + dt.timedelta(microseconds=run_us),
                trigger,
            )
            for report, run_us, trigger in found
        ]

    def _create(self) -> None:
        try:
            DeltaTable.create(
                self.uri,
                schema=SCHEMA,
                partition_by=["model"],
                mode="ignore",
                storage_options=self.lake.options(),
            )
        except CommitFailedError:
            pass  # another run created it between the look and the commit
