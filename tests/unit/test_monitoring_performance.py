"""Realised performance: training's definitions, too few labels, a drop against promotion."""

from __future__ import annotations

import numpy as np
import pytest

from shared.models.boosting import measure
from shared.monitoring.performance import (
    DROP,
    MIN_POSITIVES,
    LabelMismatch,
    realised_performance,
)

pytestmark = pytest.mark.unit


def labelled(rows: int, positives: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels, and scores that rank positives higher on the whole."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(rows)
    labels[rng.choice(rows, positives, replace=False)] = 1
    return np.clip(rng.normal(0.3 + 0.4 * labels, 0.2), 0, 1), labels


def test_the_figures_are_those_training_measures() -> None:
    scores, labels = labelled(5_000, 400)
    found = realised_performance(scores, labels, 0.5, expected_pr_auc=0.7)
    expected = measure(labels.astype(np.int8), scores, 0.5)
    assert found.enough_labels and (found.rows, found.positives) == (5_000, 400)
    assert found.pr_auc == pytest.approx(expected["pr_auc"], rel=1e-12)
    assert found.precision == pytest.approx(expected["precision"], rel=1e-12)
    assert found.recall == pytest.approx(expected["recall"], rel=1e-12)
    assert not found.dropped


def test_too_few_positives_or_no_negative_are_not_enough_labels() -> None:
    scores, labels = labelled(5_000, MIN_POSITIVES - 1)
    few = realised_performance(scores, labels, 0.5, expected_pr_auc=0.99)
    assert not few.enough_labels and few.pr_auc is None and not few.dropped
    only_positives = realised_performance(np.full(80, 0.9), np.ones(80), 0.5)
    assert not only_positives.enough_labels
    empty = realised_performance(np.array([]), np.array([]), 0.5)
    assert (empty.rows, empty.enough_labels) == (0, False)


def test_a_drop_below_the_promoted_pr_auc_is_flagged() -> None:
    scores, labels = labelled(5_000, 400)
    realised = realised_performance(scores, labels, 0.5).pr_auc
    assert realised is not None
    assert realised_performance(scores, labels, 0.5, realised + DROP + 0.01).dropped
    assert not realised_performance(scores, labels, 0.5, realised + DROP - 0.01).dropped
    assert not realised_performance(scores, labels, 0.5, None).dropped


def test_rows_without_a_score_or_a_label_are_left_out() -> None:
    scores, labels = labelled(2_000, 200)
    spoiled_scores = np.concatenate((scores, [np.nan, np.inf, 0.5, 0.5]))
    spoiled_labels = np.concatenate((labels, [1, 1, np.nan, 7]))
    assert realised_performance(spoiled_scores, spoiled_labels, 0.5) == realised_performance(
        scores, labels, 0.5
    )


def test_scores_and_labels_must_pair_up() -> None:
    with pytest.raises(LabelMismatch):
        realised_performance(np.zeros(3), np.zeros(4), 0.5)
