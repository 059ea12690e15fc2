"""Gradient boosting for the classifiers (LightGBM), split by time, exported to ONNX and
measured on the holdout: PR-AUC, ROC-AUC, and precision and recall at the chosen threshold.

LightGBM and scikit-learn are imported where training needs them: the app imports this module
at start, and a second of imports would lengthen every cold start."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.models.datasets import MissingData
from shared.models.onnx_export import (
    FEATURES_INPUT,
    PROBABILITIES,
    check_close,
    lightgbm_to_onnx,
    probabilities,
    session,
)
from shared.models.trained import TrainedModel

TRAIN_SHARE, VALIDATION_SHARE = 0.7, 0.1  # by time; the rest is the holdout
MIN_POSITIVES = 10
PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "seed": 7,
    "deterministic": True,
    "num_threads": 1,
    "verbose": -1,
}
ROUNDS, EARLY_STOP = 400, 40


@dataclass
class Boosted:
    booster: Any
    onnx: bytes
    metrics: dict[str, float]
    threshold: float
    worst_difference: float


def classifier(
    name: str,
    boosted: Boosted,
    columns: Sequence[str],
    params: dict[str, str],
    example: Sequence[float],
) -> TrainedModel:
    """A boosted classifier as the registry records it: the ONNX graph, the native model's
    text, the holdout metrics, the signature (the feature columns in order) and the card."""
    return TrainedModel(
        name=name,
        onnx=boosted.onnx,
        native=str(boosted.booster.model_to_string()).encode(),
        native_file="model.lgb.txt",
        metrics={**boosted.metrics, "onnx_max_difference": boosted.worst_difference},
        params={
            "algorithm": "lightgbm",
            "rounds": str(boosted.booster.current_iteration()),
            **params,
        },
        signature={
            "inputs": [
                {
                    "name": FEATURES_INPUT,
                    "type": "float32",
                    "shape": [-1, len(columns)],
                    "columns": list(columns),
                }
            ],
            "outputs": [{"name": PROBABILITIES, "type": "float32", "shape": [-1, 2]}],
        },
        input_example=[float(value) for value in example],
        card={"threshold": boosted.threshold, "features": list(columns)},
    )


def split_by_time(count: int) -> tuple[slice, slice, slice]:
    train_end = int(count * TRAIN_SHARE)
    validation_end = int(count * (TRAIN_SHARE + VALIDATION_SHARE))
    return slice(0, train_end), slice(train_end, validation_end), slice(validation_end, count)


def fit(x: np.ndarray, y: np.ndarray, names: Sequence[str], what: str) -> Boosted:
    """Train on the earliest rows, stop and pick the threshold (best F1) on the next, and
    measure on the latest; the ONNX graph checked on the holdout."""
    import lightgbm

    train, validation, holdout = split_by_time(len(y))
    for part, rows in (("training", train), ("validation", validation), ("holdout", holdout)):
        positives = int(y[rows].sum())
        if positives < (MIN_POSITIVES if part == "training" else 2):
            raise MissingData(
                f"{what}: {positives} positive examples in the {part} window "
                f"({len(y)} labelled rows in all): post more labelled history first"
            )
    parameters = {**PARAMS, "scale_pos_weight": _weight(y[train])}
    booster = lightgbm.train(
        parameters,
        lightgbm.Dataset(x[train], y[train], feature_name=list(names)),
        ROUNDS,
        valid_sets=[lightgbm.Dataset(x[validation], y[validation], feature_name=list(names))],
        callbacks=[lightgbm.early_stopping(EARLY_STOP, verbose=False)],
    )
    booster = float32_thresholds(booster)
    threshold = _best_f1_threshold(y[validation], np.asarray(booster.predict(x[validation])))
    native = np.asarray(booster.predict(x[holdout]))
    graph = lightgbm_to_onnx(booster, x.shape[1], threshold)
    exported = probabilities(session(graph), x[holdout])
    worst = check_close(native, exported, what)
    return Boosted(booster, graph, measure(y[holdout], native, threshold), threshold, worst)


def float32_thresholds(booster: Any) -> Any:
    """The booster with each split threshold rounded down to a float32.

    Serving feeds float32 features, and ONNX's tree ensemble keeps float32 thresholds: a
    threshold rounded to the nearest float32 can land on a feature value and send it down
    the other branch. For any float32 `x`, `x <= t` holds exactly when `x <= floor32(t)`, so
    rounding down changes nothing the model can be asked, and both runtimes then agree."""
    import lightgbm

    lines = []
    for line in str(booster.model_to_string()).splitlines():
        if line.startswith("tree_sizes="):
            continue  # byte offsets of the trees, which longer numbers move; optional
        if line.startswith("threshold="):
            values = [_floor32(float(v)) for v in line.removeprefix("threshold=").split()]
            line = "threshold=" + " ".join(repr(v) for v in values)
        lines.append(line)
    return lightgbm.Booster(model_str="\n".join(lines) + "\n")


def _floor32(value: float) -> float:
    nearest = np.float32(value)
    if float(nearest) > value:
        nearest = np.nextafter(nearest, np.float32(-np.inf))
    return float(nearest)


def measure(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    flagged = score >= threshold
    true_positives = float(np.sum(flagged & (y == 1)))
    return {
        "pr_auc": float(average_precision_score(y, score)),
        "roc_auc": float(roc_auc_score(y, score)),
        "precision": true_positives / max(1.0, float(np.sum(flagged))),
        "recall": true_positives / max(1.0, float(np.sum(y == 1))),
        "threshold": threshold,
        "holdout_rows": float(len(y)),
        "holdout_positive_rate": float(np.mean(y)),
    }


def _weight(y: np.ndarray) -> float:
    positives = float(np.sum(y))
    return min(50.0, max(1.0, (len(y) - positives) / max(1.0, positives)))


def _best_f1_threshold(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, score)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1])) if len(thresholds) else 0
    return float(thresholds[best]) if len(thresholds) else 0.5
