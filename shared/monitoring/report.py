"""A model's monitoring report for one window, as gold/model_monitoring keeps it and the API
serves it, and the action it calls for.

- retrain: the dataset drifts (at least half the features), a feature or the scores drift at
  the act level (PSI >= 0.25), or realised performance dropped; unless an input's quality
  regressed: a model retrained now would learn from the broken inputs, so the action is then
  warn, and a reason says retraining waits for the inputs to be fixed;
- warn: a feature or the scores drift at the warn level, an input's quality regressed, or a
  window is too small to judge drift;
- none otherwise.

`reasons` names every finding behind the action, the retraining ones first.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from shared.monitoring.drift import MIN_ROWS, PSI_ACT, FeatureDrift, dataset_drift
from shared.monitoring.performance import DROP, Performance
from shared.monitoring.quality import ColumnQuality

Action = Literal["none", "warn", "retrain"]


class WindowSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A window's rows, and how many of them the drift figures were computed on (a uniform
    sample of a large window)."""

    rows: int
    sampled_rows: int
    start: dt.datetime | None = None
    end: dt.datetime | None = None


class MonitoringReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every figure and verdict of one model over one window against its reference window.
    `ks_alpha` is the level each KS test was held to (the family's, shared out)."""

    model: str
    model_version: int | None = None
    reference: WindowSummary
    current: WindowSummary
    features: tuple[FeatureDrift, ...]
    drifting_features: int
    dataset_drift: bool
    prediction: FeatureDrift | None = None
    quality: tuple[ColumnQuality, ...]
    performance: Performance | None = None
    ks_alpha: float
    action: Action
    reasons: tuple[str, ...]

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)


def describe(drift: FeatureDrift) -> str:
    """A drifting feature's figures, for a reason."""
    figures = [f"PSI {drift.psi:.3f}"]
    if drift.ks_pvalue is not None:
        figures.append(f"KS p {drift.ks_pvalue:.2g}")
    if drift.wasserstein is not None:
        figures.append(f"Wasserstein {drift.wasserstein:.2f} sd")
    if drift.jensen_shannon is not None:
        figures.append(f"Jensen-Shannon {drift.jensen_shannon:.3f}")
    return f"{drift.name} ({', '.join(figures)})"


def decide(
    features: tuple[FeatureDrift, ...],
    prediction: FeatureDrift | None,
    quality: tuple[ColumnQuality, ...],
    performance: Performance | None,
) -> tuple[Action, tuple[str, ...]]:
    """The action the findings call for, and the reasons (see the module's docstring)."""
    retrain: list[str] = []
    warn: list[str] = []
    judged = [f for f in features if f.judged]
    drifting = [f for f in judged if f.drifts]
    if dataset_drift(features):
        retrain.append(f"dataset drift: {len(drifting)} of {len(judged)} features drift")
    for drift in features:
        if drift.verdict == "act":
            retrain.append(f"feature drift, PSI >= {PSI_ACT}: {describe(drift)}")
        elif drift.verdict == "warn":
            warn.append(f"feature drift: {describe(drift)}")
    if prediction is not None and prediction.verdict == "act":
        retrain.append(f"prediction drift, PSI >= {PSI_ACT}: {describe(prediction)}")
    elif prediction is not None and prediction.verdict == "warn":
        warn.append(f"prediction drift: {describe(prediction)}")
    if performance is not None and performance.dropped:
        retrain.append(
            f"performance drop: PR-AUC {performance.pr_auc:.3f} on {performance.rows} labelled "
            f"rows, more than {DROP} below {performance.expected_pr_auc:.3f} at promotion"
        )
    for column in quality:
        if column.regressed:
            warn.append(
                f"input quality: {column.column} has {column.null_rate:.1%} nulls "
                f"(reference {column.reference_null_rate:.1%}) and {column.out_of_range_rate:.1%} "
                f"out of range (reference {column.reference_out_of_range_rate:.1%})"
            )
    unjudged = [f.name for f in features if not f.judged]
    if prediction is not None and not prediction.judged:
        unjudged.append(prediction.name)
    if unjudged:
        warn.append(
            f"drift not judged, fewer than {MIN_ROWS} values in a window: {', '.join(unjudged)}"
        )
    if retrain and any(column.regressed for column in quality):
        warn.append("retraining waits until the inputs' quality is restored")
        return "warn", (*retrain, *warn)
    action: Action = "retrain" if retrain else "warn" if warn else "none"
    return action, (*retrain, *warn)
