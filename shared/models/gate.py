"""The champion/challenger gate of the model lifecycle: may a newly trained version replace the
champion? Both score the same time-based holdout (the latest rows the challenger was not
trained on), and the challenger passes only when every check holds:

- its PR-AUC beats the champion's by at least `min_uplift`, and the paired bootstrap interval
  of that uplift lies above 0 (a lucky holdout is not an improvement);
- the p99 latency of its one-record scoring is within the budget;
- its training data's input quality did not regress against the champion's (nulls and
  out-of-range values, as monitoring judges them).

A challenger that fails gets every failed check as a reason, with the figures. The gate writes
nothing: the caller records the result (`Registry.set_validation_status`).

SciPy and scikit-learn are imported where the gate runs: the app imports modules at start.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from shared.features.base import FeatureSet
from shared.models import fraud, maintenance
from shared.models.boosting import split_by_time
from shared.models.champions import load_version
from shared.models.datasets import MissingData, Reads
from shared.models.registry_port import ModelVersion
from shared.models.service import Models
from shared.monitoring.monitored import monitored_model
from shared.monitoring.quality import ColumnQuality, input_quality
from shared.pipeline.lake import Lake

Labelled = Callable[[Lake, Reads, dt.timedelta | None], tuple[np.ndarray, np.ndarray, dt.timedelta]]
GATED: dict[str, tuple[Labelled, FeatureSet[Any]]] = {
    fraud.NAME: (fraud.labelled, fraud.FEATURES),
    maintenance.NAME: (maintenance.labelled, maintenance.FEATURES),
}
LATENCY_WARMUP = 20  # calls of each model before timing: the first runs allocate


class UngatedModel(LookupError):
    """The model is not a classifier the gate can compare (the recommender is not)."""


class Scorer(Protocol):
    """What the gate needs of a version: its feature columns in order (empty: whatever order
    the caller's matrix has) and the positive class's probability per row."""

    @property
    def features(self) -> Sequence[str]: ...

    def probabilities(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class GatePolicy:
    """What a challenger must show, and how hard the gate looks."""

    min_uplift: float = 0.01  # of PR-AUC, challenger minus champion
    confidence: float = 0.95  # of the paired bootstrap interval of the uplift
    resamples: int = 1000
    latency_budget_ms: float = 10.0  # p99 of the challenger's one-record scoring
    latency_calls: int = 300  # one-record calls of each model timed
    min_per_class: int = 10  # holdout positives, and negatives, needed to compare
    seed: int = 14


@dataclass(frozen=True)
class GateResult:
    """Whether the challenger may serve; `reasons` holds every failed check (empty when it
    passed). `metrics` holds what could be measured: `holdout_rows`, `holdout_positives`,
    `quality_regressions` (columns) always; `champion_pr_auc`, `challenger_pr_auc`, `uplift`,
    `uplift_ci_low`, `uplift_ci_high` with enough of each class; `champion_p99_ms` and
    `challenger_p99_ms` when the holdout has rows."""

    passed: bool
    reasons: tuple[str, ...]
    metrics: dict[str, float]


def evaluate(
    champion: Scorer,
    challenger: Scorer,
    x: np.ndarray,
    y: np.ndarray,
    policy: GatePolicy = GatePolicy(),
    *,
    columns: Sequence[str] | None = None,
    quality: Sequence[ColumnQuality] = (),
) -> GateResult:
    """The gate on a holdout: `x` (float32 rows, its columns named by `columns`, or in the
    models' own order when None) and labels `y`; `quality` is the challenger's training data
    judged against the champion's. A holdout too small to judge fails the gate, with why."""
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"the holdout is {x.shape} features for {len(y)} labels")
    labels = np.asarray(y).astype(np.int64)
    positives = int(np.sum(labels == 1))
    regressed = [column for column in quality if column.regressed]
    metrics = {
        "holdout_rows": float(len(labels)),
        "holdout_positives": float(positives),
        "quality_regressions": float(len(regressed)),
    }
    champion_x, champion_missing = _columns_of(champion, x, columns)
    challenger_x, challenger_missing = _columns_of(challenger, x, columns)
    reasons = [
        f"the {role} reads features the holdout lacks: {', '.join(missing)}"
        for role, missing in (("champion", champion_missing), ("challenger", challenger_missing))
        if missing
    ]
    if champion_x is not None and challenger_x is not None:
        reasons += _compare(champion, challenger, champion_x, challenger_x, labels, policy, metrics)
        if len(labels):
            latency = _p99_ms(champion, challenger, champion_x, challenger_x, policy)
            metrics["champion_p99_ms"], metrics["challenger_p99_ms"] = latency
            if latency[1] > policy.latency_budget_ms:
                reasons.append(
                    f"the p99 latency of one-record scoring is {latency[1]:.3f} ms, over the "
                    f"{policy.latency_budget_ms:g} ms budget (the champion's: {latency[0]:.3f} ms)"
                )
    reasons += [_regression(column) for column in regressed]
    return GateResult(not reasons, tuple(reasons), metrics)


def gate(
    models: Models,
    lake: Lake,
    name: str,
    challenger_version: int,
    champion_version: int,
    policy: GatePolicy = GatePolicy(),
) -> GateResult:
    """The gate for two registered versions of a classifier: the holdout is the latest
    `split_by_time` slice of the challenger's labelled data, read as of its training data with
    its label maturity; input quality compares the training rows of both versions, each read as
    it was trained. ModelVersionNotFound for a version the registry lacks; UngatedModel for a
    model that is not a classifier."""
    if name not in GATED:
        raise UngatedModel(f"model {name[:64]!r} has no gate: only {', '.join(GATED)} have one")
    labelled, features = GATED[name]
    challenger_record = models.registry.get_version(name, challenger_version)
    champion_record = models.registry.get_version(name, champion_version)
    try:
        x, y = _training_data(labelled, features, lake, challenger_record)
    except MissingData as error:
        return GateResult(False, (f"the challenger's data could not be read: {error}",), {})
    try:
        reference, _ = _training_data(labelled, features, lake, champion_record)
    except MissingData as error:
        return GateResult(False, (f"the champion's data could not be read: {error}",), {})
    train, _, holdout = split_by_time(len(y))
    reference_train, _, _ = split_by_time(len(reference))
    bounds = monitored_model(name, features, threshold=0.5).bounds  # bounds only
    quality = input_quality(
        _by_column(reference[reference_train], features.numeric),
        _by_column(x[train], features.numeric),
        bounds,
    )
    return evaluate(
        load_version(models, name, champion_version),
        load_version(models, name, challenger_version),
        x[holdout],
        y[holdout],
        policy,
        columns=features.numeric,
        quality=quality,
    )


def _training_data(
    labelled: Labelled, features: FeatureSet[Any], lake: Lake, version: ModelVersion
) -> tuple[np.ndarray, np.ndarray]:
    """The version's labelled rows as it was trained on them: its tables' Delta versions,
    its label maturity."""
    hours = version.params.get("label_maturity_hours")
    maturity = dt.timedelta(hours=float(hours)) if hours else None
    x, y, _ = labelled(lake, Reads(pinned=dict(version.training_data)), maturity)
    return x.reshape(len(y), len(features.numeric)), y  # no rows: a (0,) array otherwise


def _by_column(x: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    return {name: x[:, index] for index, name in enumerate(names)}


def _columns_of(
    model: Scorer, x: np.ndarray, columns: Sequence[str] | None
) -> tuple[np.ndarray | None, list[str]]:
    """`x` in the model's column order, or None and the features it lacks."""
    wanted = list(model.features)
    if columns is None or not wanted:
        return x, []
    missing = [name for name in wanted if name not in columns]
    if missing:
        return None, missing
    named = list(columns)
    return x[:, [named.index(name) for name in wanted]], []


def _compare(
    champion: Scorer,
    challenger: Scorer,
    champion_x: np.ndarray,
    challenger_x: np.ndarray,
    y: np.ndarray,
    policy: GatePolicy,
    metrics: dict[str, float],
) -> list[str]:
    """The PR-AUC checks, their figures added to `metrics`; the failed ones' reasons."""
    from sklearn.metrics import average_precision_score

    positives = int(np.sum(y == 1))
    negatives = len(y) - positives
    needed = max(2, policy.min_per_class)  # the bootstrap resamples each class: 2 at least
    if min(positives, negatives) < needed:
        return [
            f"the holdout has {positives} positive and {negatives} negative examples: "
            f"PR-AUC needs at least {needed} of each to compare the models"
        ]
    champion_scores = champion.probabilities(champion_x)
    challenger_scores = challenger.probabilities(challenger_x)
    champion_pr_auc = float(average_precision_score(y, champion_scores))
    challenger_pr_auc = float(average_precision_score(y, challenger_scores))
    uplift = challenger_pr_auc - champion_pr_auc
    low, high = _uplift_interval(y, champion_scores, challenger_scores, policy)
    metrics |= {
        "champion_pr_auc": champion_pr_auc,
        "challenger_pr_auc": challenger_pr_auc,
        "uplift": uplift,
        "uplift_ci_low": low,
        "uplift_ci_high": high,
    }
    reasons = []
    if np.array_equal(champion_scores, challenger_scores):
        reasons.append(
            f"the challenger scores all {len(y)} holdout rows exactly as the champion does: "
            "it is the same model, with nothing to gain"
        )
    if not uplift >= policy.min_uplift:
        reasons.append(
            f"the PR-AUC uplift is {uplift:+.4f} (challenger {challenger_pr_auc:.4f}, champion "
            f"{champion_pr_auc:.4f}), under the {policy.min_uplift:g} required"
        )
    if not low > 0:
        reasons.append(
            f"the {policy.confidence:.0%} paired bootstrap interval of the uplift, "
            f"[{low:+.4f}, {high:+.4f}], does not lie above 0"
        )
    return reasons


def _uplift_interval(
    y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, policy: GatePolicy
) -> tuple[float, float]:
    """The percentile bootstrap interval of the PR-AUC uplift, paired: each resample draws
    holdout rows, and both models are measured on those same rows.

    The rows are drawn per class (positives from the positives, negatives from the negatives:
    SciPy resamples each of several samples on its own), so every resample keeps the
    holdout's positives and PR-AUC is always defined; with a few positives among thousands,
    a plain resample would now and then draw none. Percentile rather than BCa: BCa's jackknife
    measures the statistic once per holdout row, some ten times the cost of the resamples."""
    from scipy.stats import bootstrap
    from sklearn.metrics import average_precision_score

    def uplift(positive_rows: np.ndarray, negative_rows: np.ndarray) -> float:
        rows = np.concatenate([positive_rows, negative_rows]).astype(np.intp)
        labels = y[rows]
        return float(
            average_precision_score(labels, challenger[rows])
            - average_precision_score(labels, champion[rows])
        )

    result = bootstrap(
        (np.flatnonzero(y == 1), np.flatnonzero(y != 1)),
        uplift,
        n_resamples=policy.resamples,
        vectorized=False,
        paired=False,
        confidence_level=policy.confidence,
        method="percentile",
        rng=np.random.default_rng(policy.seed),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def _p99_ms(
    champion: Scorer,
    challenger: Scorer,
    champion_x: np.ndarray,
    challenger_x: np.ndarray,
    policy: GatePolicy,
) -> tuple[float, float]:
    """The p99 of one-record scoring in ms, champion's and challenger's, over holdout rows
    (cycled when fewer). The calls alternate, and which model goes first alternates too, so
    that the machine's noise and any cache warmed by the other model's call hit both alike."""
    rows = len(champion_x)
    timed: tuple[list[float], list[float]] = ([], [])
    for call in range(LATENCY_WARMUP + policy.latency_calls):
        row = call % rows
        order = ((0, champion, champion_x), (1, challenger, challenger_x))
        for index, model, matrix in order if call % 2 == 0 else order[::-1]:
            record = matrix[row : row + 1]
            start = time.perf_counter()
            model.probabilities(record)
            elapsed = time.perf_counter() - start
            if call >= LATENCY_WARMUP:
                timed[index].append(elapsed * 1000.0)
    return float(np.percentile(timed[0], 99)), float(np.percentile(timed[1], 99))


def _regression(column: ColumnQuality) -> str:
    return (
        f"the input quality of {column.column} regressed against the champion's training data: "
        f"nulls {column.null_rate:.2%} (the champion's {column.reference_null_rate:.2%}), "
        f"out of range {column.out_of_range_rate:.2%} "
        f"(the champion's {column.reference_out_of_range_rate:.2%})"
    )
