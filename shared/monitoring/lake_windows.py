"""The windows a monitoring run compares, read from the lake for a classifier's champion.

- reference: the rows the champion was trained on. Bronze is read as of the version's
  `training_data` (bronze is append-only and never vacuumed, so that version stays readable)
  and folded point in time as training folds it. The rows kept end the label maturity before
  the newest row (training's end the maturity before the newest label: labels and events land
  together, so the two differ by the pipeline's lag), and leave out the lake's first `warmup`,
  where every time window was still filling (a reference from it would make a steady current
  window look drifted). The labels are not read: silver's label tables are compacted and
  vacuumed after a week, so a label table as of an older champion's version can no longer be
  read, and drift needs features and scores only. Sampled to `REFERENCE_ROWS`, then scored by
  the champion.
- current: bronze rows with event time in [now - window, now), scored as the stream scored
  them where the champion's version did, else by the champion here.
- labelled: the most recent `window` of rows whose labels have matured (the label maturity
  before the newest label by `now`): the model's own `labelled()`, scored by the champion, for
  realised performance.

The current and labelled windows' features are exact: each row's entity is folded over its
whole history, as training and serving fold it. Features that read all of an entity's past
(the usual amount, the countries seen, the time since the last payment, the last 10 readings)
would be wrong for every entity quiet for longer than a bounded look-back, and drift on them
would call for retraining every hour. Only the history of the window's entities is read (a
semi-join on the entity in DuckDB, below the fold): a run costs their history, not the table's.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from shared.features.base import FeatureSet, Row, epoch_seconds
from shared.features.payments import HORIZON_S as PAYMENTS_HORIZON_S
from shared.features.telemetry import HORIZON_S as TELEMETRY_HORIZON_S
from shared.models import fraud, maintenance
from shared.models.champions import Champion
from shared.models.datasets import MissingData, Reads, bronze_rows
from shared.monitoring.monitor import Labelled, Window
from shared.pipeline.lake import Lake, table_name

REFERENCE_ROWS = 100_000  # drift reads 5,000 of them; quality rates are good to 0.1% on this
SAMPLE_SEED = 14
STREAM_SCORE = ("score", "model_name", "model_version")  # bronze's scoring columns
log = logging.getLogger(__name__)

LabelledRows = Callable[[Lake, Reads, dt.timedelta | None], tuple[np.ndarray, np.ndarray, Any]]


class FeaturesChanged(ValueError):
    """The champion reads a feature its feature set no longer computes: retrain it."""


@dataclass(frozen=True)
class Monitorable:
    """A classifier as its windows are read: its feature set, the contract's columns it
    reads, its labelling (`labelled`, as training labels), the silver table of its labels, the
    label maturity training waits by default, and the feature set's longest time window."""

    features: FeatureSet[Any]
    columns: tuple[str, ...]
    labelled: LabelledRows
    labels: str
    maturity: dt.timedelta
    warmup: dt.timedelta


MONITORABLE = {
    fraud.NAME: Monitorable(
        fraud.FEATURES,
        fraud.COLUMNS,
        fraud.labelled,
        "payment_chargeback",
        fraud.MATURITY,
        dt.timedelta(seconds=PAYMENTS_HORIZON_S),
    ),
    maintenance.NAME: Monitorable(
        maintenance.FEATURES,
        maintenance.COLUMNS,
        maintenance.labelled,
        "device_failure",
        maintenance.HORIZON + maintenance.REPORT_DELAY,
        dt.timedelta(seconds=TELEMETRY_HORIZON_S),
    ),
}


@dataclass
class WindowReads(Reads):
    """Reads whose bronze tables hold, of the rows before `until`, those of the entities
    (`entity`, a column) with an event in [active_since, until): a window's rows and their
    entities' history. Keeps the event times (seconds) of the last bronze rows it read, in the
    order read: `labelled()` hands back features without their times. Without `until`, it
    reads as `Reads` does."""

    until: dt.datetime | None = None
    active_since: dt.datetime | None = None
    entity: str = ""
    times: np.ndarray = field(default_factory=lambda: np.empty(0))

    def query(
        self, lake: Lake, layer: str, table: str, sql: str, parameters: Sequence[Any] = ()
    ) -> pa.Table | None:
        if layer != "bronze" or self.until is None:
            return super().query(lake, layer, table, sql, parameters)
        delta = lake.open(layer, table, self.pinned.get(f"{layer}.{table}"))
        if delta is None:
            return None
        self.versions[f"{layer}.{table}"] = delta.version()
        connection = duckdb.connect()
        try:
            connection.register("bronze", delta.to_pyarrow_dataset())
            connection.execute(f"CREATE VIEW source AS {self._rows()}")
            found = connection.sql(sql, params=list(parameters)).to_arrow_table()
        finally:
            connection.close()
        if "t_us" in found.column_names:
            self.times = found.column("t_us").to_numpy() / 1_000_000
        return found

    def _rows(self) -> str:
        """The view's query, bounded on the partition column too so that whole days are
        skipped. Its literals are written from datetimes and the entity from the feature set:
        nothing from outside reaches the SQL."""
        assert self.until is not None
        until = self.until.astimezone(dt.UTC)
        before = (
            f"event_date <= DATE '{until.date().isoformat()}' "
            f"AND event_time < TIMESTAMPTZ '{_literal(until)}'"
        )
        if self.active_since is None:
            return f"SELECT * FROM bronze WHERE {before}"
        since = self.active_since.astimezone(dt.UTC)
        entity = f'"{self.entity}"'
        return (
            f"SELECT * FROM bronze WHERE {before} AND {entity} IN ("
            f"SELECT {entity} FROM bronze WHERE {before} "
            f"AND event_date >= DATE '{since.date().isoformat()}' "
            f"AND event_time >= TIMESTAMPTZ '{_literal(since)}')"
        )


def _literal(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def _moment(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def scored(champion: Champion, names: Sequence[str], matrix: np.ndarray) -> np.ndarray:
    """The champion's scores of rows whose features are `matrix`'s columns, named `names`
    (the feature set's order; the champion reads its card's)."""
    missing = [name for name in champion.features if name not in names]
    if missing:
        raise FeaturesChanged(
            f"{champion.name} version {champion.version} reads features the feature set no "
            f"longer computes: {', '.join(missing)}"
        )
    columns = [list(names).index(name) for name in champion.features]
    if matrix.shape[0] == 0:
        return np.empty(0)
    return np.asarray(champion.probabilities(matrix[:, columns]), dtype=np.float64)


def _window(
    names: Sequence[str],
    matrix: np.ndarray,
    scores: np.ndarray,
    start: dt.datetime,
    end: dt.datetime,
) -> Window:
    columns = {name: matrix[:, index].astype(np.float64) for index, name in enumerate(names)}
    return Window(columns, scores, start, end)


def reference_window(
    lake: Lake,
    spec: Monitorable,
    champion: Champion,
    training_data: dict[str, int],
    maturity: dt.timedelta,
    limit: int = REFERENCE_ROWS,
) -> Window:
    """The champion's training rows (see the module's docstring), a uniform sample of at most
    `limit` of them, scored by the champion."""
    names = spec.features.numeric
    event_type = spec.features.event_type
    if f"bronze.{table_name(event_type)}" not in training_data:
        log.warning(
            "model %s version %d recorded no bronze version: its reference is bronze as it is now",
            champion.name,
            champion.version,
        )
    rows = bronze_rows(lake, Reads(pinned=training_data), event_type, spec.columns)
    if not rows:
        raise MissingData(f"{champion.name}: bronze held no rows when it was trained")
    first, last = rows[0]["t"], rows[-1]["t"]
    begin, end = first + spec.warmup.total_seconds(), last - maturity.total_seconds()
    if begin > end:
        log.warning(
            "model %s: trained on less than %s of history past the label maturity; its "
            "reference includes the lake's first rows, whose windows were still filling",
            champion.name,
            spec.warmup,
        )
        begin, end = first, max(first, end)
    low = bisect.bisect_left(rows, begin, key=_time)
    high = bisect.bisect_right(rows, end, key=_time)
    picked = np.arange(low, high)
    if picked.size > limit:
        picked = np.sort(np.random.default_rng(SAMPLE_SEED).choice(picked, limit, replace=False))
    wanted = set(picked.tolist())
    matrix = np.empty((picked.size, len(names)), dtype=np.float32)
    for kept, (_, found) in enumerate(
        fold(spec.features, rows[:high], lambda index, _: index in wanted)
    ):
        matrix[kept] = [found[name] for name in names]
    return _window(names, matrix, scored(champion, names, matrix), _moment(begin), _moment(end))


def _time(row: Row) -> float:
    return float(row["t"])


def fold(
    feature_set: FeatureSet[Any], rows: Iterable[Row], wanted: Callable[[int, Row], bool]
) -> Iterator[tuple[Row, dict[str, Any]]]:
    """`offline.point_in_time`, yielding only the rows `wanted(index, row)` picks, with their
    features: the others are folded into their entities' states only, as their features are
    not needed (and computing them is nine tenths of a fold's cost)."""
    states: dict[str, Any] = {}
    for index, row in enumerate(rows):
        entity = row[feature_set.entity]
        state = states.get(entity)
        if state is None:
            state = states[entity] = feature_set.new_state()
        if wanted(index, row):
            yield row, feature_set.features(state, row)
        feature_set.apply(state, row)


def current_window(
    lake: Lake, spec: Monitorable, champion: Champion, start: dt.datetime, end: dt.datetime
) -> Window:
    """Bronze rows with event time in [start, end), with their features (their entities'
    history folded) and the stream's score where the champion's version gave one (the
    champion's score here otherwise)."""
    event_type = spec.features.event_type
    delta = lake.open("bronze", table_name(event_type))
    if delta is None:
        raise MissingData(f"no {event_type} events in bronze yet: post some first")
    has_scores = set(STREAM_SCORE) <= {column.name for column in delta.schema().fields}
    reads = WindowReads(until=end, active_since=start, entity=spec.features.entity)
    columns = (*spec.columns, *(STREAM_SCORE if has_scores else ()))
    begin = epoch_seconds(start)
    names = spec.features.numeric
    matrix: list[list[float]] = []
    stream: list[float] = []
    rows = bronze_rows(lake, reads, event_type, columns)
    for row, found in fold(spec.features, rows, lambda _, row: row["t"] >= begin):
        matrix.append([found[name] for name in names])
        stream.append(_stream_score(row, champion))
    features = np.asarray(matrix, dtype=np.float32).reshape(len(matrix), len(names))
    scores = np.asarray(stream, dtype=np.float64)
    unscored = np.isnan(scores)
    if unscored.any():
        scores[unscored] = scored(champion, names, features[unscored])
    log.info(
        "model %s: %d rows in the current window, %d scored by the stream",
        champion.name,
        len(scores),
        int((~unscored).sum()),
    )
    return _window(names, features, scores, start, end)


def _stream_score(row: Row, champion: Champion) -> float:
    score = row.get("score")
    if (
        score is None
        or row.get("model_name") != champion.name
        or row.get("model_version") != champion.version
    ):
        return float("nan")
    return float(score)


def labelled_window(
    lake: Lake,
    spec: Monitorable,
    champion: Champion,
    maturity: dt.timedelta,
    now: dt.datetime,
    window: dt.timedelta,
) -> Labelled | None:
    """The last `window` of rows whose labels had matured by `now` (the labels up to `now`
    are read; the maturity is the version's), scored by the champion; None before any label."""
    newest = Reads().query(
        lake,
        "silver",
        spec.labels,
        "SELECT max(epoch_us(event_time)) AS newest FROM source WHERE event_time <= ?",
        [now],
    )
    newest_us = None if newest is None else newest.column("newest")[0].as_py()
    if newest_us is None:
        log.info("model %s: no labels by %s, no realised performance", champion.name, now)
        return None
    known_until = _moment(newest_us / 1_000_000) - maturity
    start = known_until - window
    # A microsecond past the maturity: `labelled()` keeps a row at it exactly.
    reads = WindowReads(
        until=known_until + dt.timedelta(microseconds=1),
        active_since=start,
        entity=spec.features.entity,
    )
    x, y, _ = spec.labelled(lake, reads, maturity)
    in_window = reads.times[: len(y)] >= epoch_seconds(start)
    features, labels = x[in_window], y[in_window]
    return Labelled(scored(champion, spec.features.numeric, features), labels.astype(np.float64))
