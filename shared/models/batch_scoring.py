"""Batch inference: a model version scores a silver or gold table of its contract into
`gold/<model>_scores`, in bounded memory.

DuckDB streams the source once per event id, ordered by entity, event time and event id (its
sort spills to `temp_dir` past `memory_limit`), so that the feature fold holds one entity's
state at a time and computes each row's features as training does (`offline.point_in_time`:
the entity's earlier events only). Rows are scored `chunk_rows` at a time by onnxruntime and
stream into Delta as record batches; nothing holds the whole table. (DuckDB's scan and sort
hold what `memory_limit` allows, and spill the rest.)

The output keeps one score per event and source: a run replaces the rows of its source (a
Delta overwrite with a predicate on `source`), so a retried or repeated run leaves the latest
scoring of each table and those of other tables alone. A row whose values cannot be read as
its contract's (a NULL, a text where a number belongs; no event id, time or entity) is
skipped and counted, as the intake would have refused the event; the entity's other rows are
still scored.

This is the in-process path (`BATCH_ENGINE=duckdb`); on Databricks or Synapse the same fold runs
on Spark (`shared.models.remote_scoring`, `shared.batch.spark_runner`) into the same table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from shared.features.base import FeatureSet
from shared.models import fraud, maintenance
from shared.models.champions import Champion, load_version
from shared.models.datasets import MissingData
from shared.models.deployment import CHAMPION
from shared.models.registry import AliasNotFound, ModelNotFound
from shared.models.service import SOURCE, Models
from shared.pipeline.lake import Lake, table_name

CHUNK_ROWS = 8192
MEMORY_LIMIT = "512MB"


@dataclass(frozen=True)
class Scorable:
    """What a model reads from a table: its feature set and the contract's columns."""

    features: FeatureSet[Any]
    columns: tuple[str, ...]

    @property
    def default_source(self) -> str:
        return f"silver.{table_name(self.features.event_type)}"


SCORABLE = {
    fraud.NAME: Scorable(fraud.FEATURES, fraud.COLUMNS),
    maintenance.NAME: Scorable(maintenance.FEATURES, maintenance.COLUMNS),
}


class BadSource(ValueError):
    """The table cannot be scored by the model: the message says why."""


@dataclass(frozen=True)
class ScoringTarget:
    """A checked source: the model's feature set and columns, the source's name
    (`<layer>.<table>`), URI and Delta table."""

    scorable: Scorable
    source: str
    uri: str
    delta: DeltaTable


@dataclass(frozen=True)
class BatchScoreRequest:
    """Score `source` (`<silver|gold>.<table>`; the model's silver table by default) with
    `version` (the champion by default)."""

    model: str
    version: int | None = None
    source: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class BatchScoreResult:
    model: str
    version: int
    source: str
    source_version: int
    output: str
    output_version: int
    rows_scored: int
    rows_skipped: int
    alerts: int  # rows at or over the version's threshold

    def payload(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def output_table(model: str) -> str:
    return f"{model}_scores"


def output_schema(entity: str) -> pa.Schema:
    utc = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("event_id", pa.string()),
            ("event_time", utc),
            (entity, pa.string()),
            ("score", pa.float64()),
            ("decision", pa.bool_()),
            ("threshold", pa.float64()),
            ("model_name", pa.string()),
            ("model_version", pa.int32()),
            ("source", pa.string()),
            ("source_version", pa.int64()),
            ("run_id", pa.string()),
            ("scored_at", utc),
        ]
    )


class BatchScoring:
    """Runs batch scorings on the lake with the registry's versions (one per activity)."""

    def __init__(
        self,
        lake: Lake,
        models: Models,
        *,
        temp_dir: Path | None = None,
        memory_limit: str = MEMORY_LIMIT,
        chunk_rows: int = CHUNK_ROWS,
        on_chunk: Callable[[int], None] | None = None,
    ) -> None:
        """`on_chunk(rows scored so far)` is called after each chunk is scored (progress)."""
        self.lake = lake
        self.models = models
        self._temp_dir = temp_dir
        self._memory_limit = memory_limit
        self._chunk_rows = chunk_rows
        self._on_chunk = on_chunk

    def run(self, request: BatchScoreRequest, now: dt.datetime | None = None) -> BatchScoreResult:
        target = self.target(request)
        champion = load_version(self.models, request.model, self.version_of(request))
        scorable, source, delta = target.scorable, target.source, target.delta
        scored = _Scored(
            champion,
            scorable,
            source=source,
            source_version=delta.version(),
            run_id=request.run_id,
            scored_at=now or dt.datetime.now(dt.UTC),
            on_chunk=self._on_chunk,
        )
        connection = self._connect()
        try:
            connection.register("source", delta.to_pyarrow_dataset())
            reader = connection.sql(_source_sql(scorable)).to_arrow_reader(self._chunk_rows)
            uri = self.lake.uri("gold", output_table(request.model))
            write_deltalake(
                uri,
                pa.RecordBatchReader.from_batches(scored.schema, scored.batches(reader)),
                mode="overwrite",
                predicate=f"source = '{source}'",
                storage_options=self.lake.options(),
            )
        finally:
            connection.close()
        written = self.lake.open("gold", output_table(request.model))
        return BatchScoreResult(
            model=request.model,
            version=champion.version,
            source=source,
            source_version=scored.source_version,
            output=f"gold.{output_table(request.model)}",
            output_version=written.version() if written is not None else -1,
            rows_scored=scored.rows,
            rows_skipped=scored.skipped,
            alerts=scored.alerts,
        )

    def target(self, request: BatchScoreRequest) -> ScoringTarget:
        """What the request scores: its model's feature set and columns, and the source's
        Delta table, checked to hold them (BadSource, MissingData)."""
        scorable = SCORABLE.get(request.model)
        if scorable is None:
            raise BadSource(f"{request.model[:64]!r} is not scored in batch: {', '.join(SCORABLE)}")
        source = request.source or scorable.default_source
        matched = SOURCE.fullmatch(source)
        if matched is None:
            raise BadSource("a source is <silver|gold>.<table>, in lower case")
        layer, table = matched.groups()
        delta = self.lake.open(layer, table)
        if delta is None:
            raise MissingData(f"no table {source} in the lake yet")
        _check_columns(source, delta.schema().to_arrow(), scorable)
        return ScoringTarget(scorable, source, self.lake.uri(layer, table), delta)

    def version_of(self, request: BatchScoreRequest) -> int:
        """The version the request names, or the model's champion (MissingData without one)."""
        if request.version is not None:
            return request.version
        try:
            return self.models.registry.get_version_by_alias(request.model, CHAMPION).version
        except (AliasNotFound, ModelNotFound):
            raise MissingData(
                f"{request.model} has no champion: train it first "
                f"(POST /api/models/{request.model}/train)"
            ) from None

    def _connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": self._memory_limit
        }
        if self._temp_dir is not None:
            self._temp_dir.mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = str(self._temp_dir)
        connection = duckdb.connect(config=config)
        connection.execute("SET TimeZone = 'UTC'")
        return connection


def _check_columns(source: str, schema: pa.Schema, scorable: Scorable) -> None:
    missing = [c for c in ("event_id", "event_time", *scorable.columns) if c not in schema.names]
    if missing:
        raise BadSource(
            f"{source} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"that {scorable.features.event_type} scoring reads"
        )


def _source_sql(scorable: Scorable) -> str:
    """Each event once (rows without an id pass, to be counted as skipped), by entity and
    time: NULL entities and times sort last and are skipped as they come."""
    entity = scorable.features.entity
    columns = ", ".join(f'"{c}"' for c in scorable.columns)
    return (
        f"SELECT event_id, event_time, epoch_us(event_time) AS t_us, {columns} FROM source "
        "QUALIFY event_id IS NULL "
        "OR row_number() OVER (PARTITION BY event_id ORDER BY event_time) = 1 "
        f'ORDER BY "{entity}", event_time, event_id'
    )


class _Scored:
    """The fold and the scoring, one record batch in, one out; counts as it goes."""

    def __init__(
        self,
        champion: Champion,
        scorable: Scorable,
        *,
        source: str,
        source_version: int,
        run_id: str,
        scored_at: dt.datetime,
        on_chunk: Callable[[int], None] | None,
    ) -> None:
        self.champion = champion
        self.features = scorable.features
        self.schema = output_schema(scorable.features.entity)
        self.source, self.source_version = source, source_version
        self.run_id, self.scored_at = run_id, scored_at
        self.rows = self.skipped = self.alerts = 0
        self._on_chunk = on_chunk
        self._entity: Any = None
        self._state: Any = None

    def batches(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in reader:
            kept, matrix = [], []
            for row in batch.to_pylist():
                found = self._fold(row)
                if found is None:
                    self.skipped += 1
                    continue
                kept.append(row)
                matrix.append(found)
            if kept:
                yield self._scored(kept, matrix)
                if self._on_chunk is not None:
                    self._on_chunk(self.rows)

    def _fold(self, row: dict[str, Any]) -> list[float] | None:
        entity = row[self.features.entity]
        if entity is None or row["event_id"] is None or row["t_us"] is None:
            return None
        if entity != self._entity:
            self._entity, self._state = entity, self.features.new_state()
        row["t"] = row["t_us"] / 1_000_000
        try:
            found = self.features.features(self._state, row)
            self.features.apply(self._state, row)
            return [float(found[name]) for name in self.champion.features]
        except (TypeError, ValueError, KeyError):
            return None

    def _scored(self, rows: list[dict[str, Any]], matrix: Sequence[list[float]]) -> pa.RecordBatch:
        probabilities = self.champion.probabilities(np.asarray(matrix, dtype=np.float32))
        threshold = self.champion.threshold
        decisions = probabilities >= threshold
        count = len(rows)
        self.rows += count
        self.alerts += int(decisions.sum())
        entity = self.features.entity
        return pa.record_batch(
            [
                pa.array([row["event_id"] for row in rows], pa.string()),
                pa.array([row["event_time"] for row in rows], self.schema.field(1).type),
                pa.array([str(row[entity]) for row in rows], pa.string()),
                pa.array(probabilities.astype(np.float64)),
                pa.array(decisions),
                pa.array(np.full(count, threshold)),
                pa.array([self.champion.name] * count, pa.string()),
                pa.array(np.full(count, self.champion.version, dtype=np.int32)),
                pa.array([self.source] * count, pa.string()),
                pa.array(np.full(count, self.source_version, dtype=np.int64)),
                pa.array([self.run_id] * count, pa.string()),
                pa.array([self.scored_at] * count, self.schema.field(11).type),
            ],
            schema=self.schema,
        )
