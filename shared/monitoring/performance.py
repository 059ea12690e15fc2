"""A model's realised performance over a window whose labels have arrived (chargebacks,
failure reports): PR-AUC, and precision and recall at its threshold, by the definitions
training measures its holdout with (`boosting.measure`: scikit-learn's average precision; a
row is flagged when its score reaches the threshold). `measure` itself is not called: it also
computes ROC-AUC, which nothing here reads and which would double the cost of a run over a
million rows (a test holds the two to the same figures).

A window with fewer than `MIN_POSITIVES` positives (or no negative) has not enough labels: its
PR-AUC would be mostly noise (its standard error is roughly sqrt(AP * (1 - AP) / positives),
0.06 at 50 positives and an AP of 0.75). Performance has dropped when the realised PR-AUC is
more than `DROP` below the PR-AUC the model was promoted with (its holdout's).
"""

from __future__ import annotations

import msgspec
import numpy as np

MIN_POSITIVES = 50
DROP = 0.10


class LabelMismatch(ValueError):
    """Scores and labels that do not pair up."""


class Performance(msgspec.Struct, frozen=True, kw_only=True):
    """Realised performance over the labelled rows of a window; the figures are None when it
    has not enough labels."""

    rows: int
    positives: int
    threshold: float
    enough_labels: bool
    pr_auc: float | None = None
    precision: float | None = None
    recall: float | None = None
    expected_pr_auc: float | None = None
    dropped: bool = False


def realised_performance(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    expected_pr_auc: float | None = None,
) -> Performance:
    """Performance over the rows with a finite score and a label of 0 or 1 (others are left
    out); `expected_pr_auc` is the model's holdout PR-AUC, if known."""
    score = np.asarray(scores, dtype=np.float64).ravel()
    label = np.asarray(labels, dtype=np.float64).ravel()
    if score.size != label.size:
        raise LabelMismatch(f"{score.size} scores for {label.size} labels")
    known = np.isfinite(score) & ((label == 0) | (label == 1))
    score, y = score[known], label[known].astype(np.int8)
    positives = int(np.count_nonzero(y))
    enough = positives >= MIN_POSITIVES and positives < y.size
    if not enough:
        return Performance(
            rows=int(y.size),
            positives=positives,
            threshold=threshold,
            enough_labels=False,
            expected_pr_auc=expected_pr_auc,
        )
    from sklearn.metrics import average_precision_score  # a second of imports: when needed

    pr_auc = float(average_precision_score(y, score))
    flagged = score >= threshold
    true_positives = int(np.count_nonzero(flagged & (y == 1)))
    return Performance(
        rows=int(y.size),
        positives=positives,
        threshold=threshold,
        enough_labels=True,
        pr_auc=pr_auc,
        precision=true_positives / max(1, int(np.count_nonzero(flagged))),
        recall=true_positives / positives,
        expected_pr_auc=expected_pr_auc,
        dropped=expected_pr_auc is not None and pr_auc < expected_pr_auc - DROP,
    )
