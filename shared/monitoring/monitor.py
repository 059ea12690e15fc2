"""One monitoring run of a model: its reference window (what it was trained on) against a
current window, and optionally a window whose labels have arrived, into a `MonitoringReport`.

Drift is judged on a uniform sample of at most `SAMPLE_ROWS` rows of each window (the same rows
for every column, seeded, so a run is repeatable). That is the window size the verdict rule is
measured at (`python -m benchmarks drift`), so a large window gets the false alarm and
detection rates measured there rather than a KS test that, at a million rows, flags moves too
small to matter; and a run costs the same whatever the traffic. Input quality and performance
count every row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shared.monitoring.drift import FAMILY_ALPHA, dataset_drift, feature_drift
from shared.monitoring.monitored import MonitoredModel
from shared.monitoring.performance import realised_performance
from shared.monitoring.quality import input_quality
from shared.monitoring.report import MonitoringReport, WindowSummary, decide

SAMPLE_ROWS = 5_000
SAMPLE_SEED = 14
SCORE = "score"


class MalformedWindow(ValueError):
    """A window lacks a feature the model reads, or its columns differ in length."""


@dataclass(frozen=True)
class Window:
    """A model's rows over a time window: each feature's values (a null as NaN) and, when
    scored, the model's scores, all in the same row order."""

    columns: Mapping[str, np.ndarray]
    scores: np.ndarray | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @property
    def rows(self) -> int:
        for values in self.columns.values():
            return len(values)
        return 0 if self.scores is None else len(self.scores)


@dataclass(frozen=True)
class Labelled:
    """Scored rows whose labels have arrived: 1 positive, 0 negative."""

    scores: np.ndarray
    labels: np.ndarray


def _float_column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise MalformedWindow(f"the window has no column {name!r}")
    return np.asarray(table.column(name).cast(pa.float64()).to_numpy(), dtype=np.float64)


def window_from_arrow(
    table: pa.Table,
    features: Sequence[str],
    *,
    score: str | None = SCORE,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> Window:
    """A window from an Arrow table (as DuckDB or deltalake read it), nulls as NaN."""
    columns = {name: _float_column(table, name) for name in features}
    scores = _float_column(table, score) if score is not None else None
    return Window(columns, scores, start, end)


def labelled_from_arrow(table: pa.Table, *, score: str = SCORE, label: str = "label") -> Labelled:
    return Labelled(_float_column(table, score), _float_column(table, label))


def _check(model: MonitoredModel, window: Window, which: str) -> None:
    missing = [name for name in model.features if name not in window.columns]
    if missing:
        raise MalformedWindow(f"the {which} window lacks the features {missing}")
    lengths = {len(values) for values in window.columns.values()}
    if window.scores is not None:
        lengths.add(len(window.scores))
    if len(lengths) > 1:
        raise MalformedWindow(f"the {which} window's columns differ in length: {sorted(lengths)}")


def _sample(rows: int, limit: int, rng: np.random.Generator) -> np.ndarray | slice:
    if rows <= limit:
        return slice(None)
    return np.sort(rng.choice(rows, size=limit, replace=False))


def monitor(
    model: MonitoredModel,
    reference: Window,
    current: Window,
    labelled: Labelled | None = None,
    *,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = SAMPLE_SEED,
) -> MonitoringReport:
    """The model's report: feature drift, prediction drift when both windows are scored,
    input quality, performance over `labelled`, and the action."""
    _check(model, reference, "reference")
    _check(model, current, "current")
    rng = np.random.default_rng(seed)
    ref_rows = _sample(reference.rows, sample_rows, rng)
    cur_rows = _sample(current.rows, sample_rows, rng)
    scored = reference.scores is not None and current.scores is not None
    tests = sum(name not in model.categorical for name in model.features) + scored
    alpha = FAMILY_ALPHA / max(1, tests)
    features = tuple(
        feature_drift(
            name,
            reference.columns[name][ref_rows],
            current.columns[name][cur_rows],
            categorical=name in model.categorical,
            alpha=alpha,
        )
        for name in model.features
    )
    prediction = None
    if reference.scores is not None and current.scores is not None:
        prediction = feature_drift(
            SCORE,
            reference.scores[ref_rows],
            current.scores[cur_rows],
            categorical=False,
            alpha=alpha,
        )
    quality = input_quality(
        {name: reference.columns[name] for name in model.features},
        {name: current.columns[name] for name in model.features},
        model.bounds,
    )
    performance = None
    if labelled is not None:
        performance = realised_performance(
            labelled.scores, labelled.labels, model.threshold, model.expected_pr_auc
        )
    action, reasons = decide(features, prediction, quality, performance)
    return MonitoringReport(
        model=model.name,
        model_version=model.version,
        reference=_summary(reference, sample_rows),
        current=_summary(current, sample_rows),
        features=features,
        drifting_features=sum(feature.drifts for feature in features),
        dataset_drift=dataset_drift(features),
        prediction=prediction,
        quality=quality,
        performance=performance,
        ks_alpha=alpha,
        action=action,
        reasons=reasons,
    )


def _summary(window: Window, sample_rows: int) -> WindowSummary:
    return WindowSummary(
        rows=window.rows,
        sampled_rows=min(window.rows, sample_rows),
        start=window.start,
        end=window.end,
    )
