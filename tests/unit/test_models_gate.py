"""The champion/challenger gate: a challenger serves only with a PR-AUC uplift whose paired
bootstrap interval lies above 0, one-record scoring within the latency budget, and no input
quality regression; every failed check is a reason, and a holdout too small to judge fails
the gate rather than raising."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pytest

from shared.models.boosting import fit
from shared.models.champions import Champion
from shared.models.gate import GatePolicy, UngatedModel, evaluate, gate
from shared.models.onnx_export import session
from shared.models.service import Models
from shared.models.training import TrainingRequest
from shared.monitoring.quality import column_quality
from shared.pipeline.lake import Lake
from tests.lakedata import land, payment
from tests.modeldata import land_history, refresh, trained_models

pytestmark = pytest.mark.unit
COLUMNS = ("a", "b", "c", "d")
FAST = GatePolicy(resamples=200, latency_calls=100)
END = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # of the simulated history
HALF_DAY = dt.timedelta(hours=12)


def _model(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], version: int) -> Champion:
    boosted = fit(x, y, names, "synthetic")
    card = {"threshold": boosted.threshold, "features": list(names)}
    return Champion("synthetic", version, session(boosted.onnx), card)


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label depends strongly on `a` and `b`, slightly on `d`, not on `c`."""
    rng = np.random.default_rng(14)
    x = rng.normal(size=(6000, len(COLUMNS))).astype(np.float32)
    logit = 2.5 * x[:, 0] + 2.0 * x[:, 1] + 0.5 * x[:, 3] - 4.0
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


@pytest.fixture(scope="module")
def strong(synthetic: tuple[np.ndarray, np.ndarray]) -> Champion:
    x, y = synthetic
    return _model(x[:4000], y[:4000], COLUMNS, 2)


@pytest.fixture(scope="module")
def weak(synthetic: tuple[np.ndarray, np.ndarray]) -> Champion:
    """A deliberately weak champion: it reads `d` and `c` only, in that order."""
    x, y = synthetic
    return _model(x[:4000][:, [3, 2]], y[:4000], ("d", "c"), 1)


@pytest.fixture(scope="module")
def holdout(synthetic: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    x, y = synthetic
    return x[4000:], y[4000:]


def test_a_clearly_better_challenger_passes(
    weak: Champion, strong: Champion, holdout: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = holdout
    result = evaluate(weak, strong, x, y, GatePolicy(), columns=COLUMNS)
    assert result.passed and result.reasons == ()
    metrics = result.metrics
    assert metrics["uplift"] == pytest.approx(
        metrics["challenger_pr_auc"] - metrics["champion_pr_auc"]
    )
    assert metrics["uplift"] >= 0.01 and 0 < metrics["uplift_ci_low"] <= metrics["uplift"]
    assert metrics["uplift"] <= metrics["uplift_ci_high"]
    assert metrics["holdout_rows"] == len(y) and metrics["holdout_positives"] == y.sum()
    assert 0 < metrics["challenger_p99_ms"] <= 10 and metrics["champion_p99_ms"] > 0
    assert metrics["quality_regressions"] == 0


def test_a_worse_challenger_is_rejected_with_the_figures(
    weak: Champion, strong: Champion, holdout: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = holdout
    result = evaluate(strong, weak, x, y, FAST, columns=COLUMNS)
    assert not result.passed
    uplift, interval = result.reasons
    assert uplift.startswith(f"the PR-AUC uplift is {result.metrics['uplift']:+.4f}")
    assert "under the 0.01 required" in uplift
    assert "95% paired bootstrap interval" in interval and "does not lie above 0" in interval


def test_latency_over_the_budget_is_rejected(
    weak: Champion, strong: Champion, holdout: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = holdout
    policy = GatePolicy(resamples=200, latency_calls=100, latency_budget_ms=1e-6)
    result = evaluate(weak, strong, x, y, policy, columns=COLUMNS)
    assert not result.passed
    [reason] = result.reasons
    assert "p99 latency" in reason and "over the 1e-06 ms budget" in reason
    assert f"{result.metrics['challenger_p99_ms']:.3f} ms" in reason


def test_a_quality_regression_is_rejected(
    weak: Champion, strong: Champion, holdout: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = holdout
    clean = np.zeros(100)
    broken = np.where(np.arange(100) < 10, np.nan, 0.0)
    quality = (column_quality("a", clean, broken), column_quality("b", clean, clean))
    result = evaluate(weak, strong, x, y, FAST, columns=COLUMNS, quality=quality)
    assert not result.passed and result.metrics["quality_regressions"] == 1
    [reason] = result.reasons
    assert reason.startswith("the input quality of a regressed")
    assert "nulls 10.00% (the champion's 0.00%)" in reason


def test_the_bootstrap_is_deterministic_for_a_seed(
    weak: Champion, strong: Champion, holdout: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = holdout

    def interval(seed: int) -> tuple[float, float]:
        policy = GatePolicy(resamples=200, latency_calls=10, seed=seed)
        metrics = evaluate(weak, strong, x, y, policy, columns=COLUMNS).metrics
        return metrics["uplift_ci_low"], metrics["uplift_ci_high"]

    assert interval(14) == interval(14)
    assert interval(14) != interval(15)


@pytest.mark.parametrize(
    ("rows", "labels"),
    [
        (0, "none"),  # an empty holdout
        (500, "negatives"),  # no positives
        (500, "positives"),  # no negatives
        (12, "alternating"),  # tiny: 6 of each
    ],
)
def test_a_degenerate_holdout_fails_the_gate_and_says_why(
    weak: Champion,
    strong: Champion,
    holdout: tuple[np.ndarray, np.ndarray],
    rows: int,
    labels: str,
) -> None:
    x = holdout[0][:rows]
    y = {
        "none": np.zeros(0, dtype=np.int64),
        "negatives": np.zeros(rows, dtype=np.int64),
        "positives": np.ones(rows, dtype=np.int64),
        "alternating": np.arange(rows) % 2,
    }[labels]
    result = evaluate(weak, strong, x, y, FAST, columns=COLUMNS)
    assert not result.passed
    [reason] = result.reasons
    positives = int(y.sum())
    assert reason == (
        f"the holdout has {positives} positive and {rows - positives} negative examples: "
        "PR-AUC needs at least 10 of each to compare the models"
    )
    assert "uplift" not in result.metrics and result.metrics["holdout_rows"] == rows
    assert ("challenger_p99_ms" in result.metrics) == (rows > 0)


def test_a_model_reading_features_the_holdout_lacks_is_rejected(
    weak: Champion, strong: Champion, holdout: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = holdout
    result = evaluate(weak, strong, x[:, :3], y, FAST, columns=COLUMNS[:3])
    assert result.reasons == (
        "the champion reads features the holdout lacks: d",
        "the challenger reads features the holdout lacks: d",
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gate") / "lake"
    land_history(root, days=2, rate=0.5, seed=5, label_delay_scale=0.2, end=END)
    refresh(root)
    return root


@pytest.fixture(scope="module")
def models(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Fraud version 1, the champion, and version 2 trained again on the same data. Then, what
    neither version saw: newer history, and payments of a negative amount (out of the
    contract's range) among the early ones."""
    trained = trained_models(lake, tmp_path_factory.mktemp("registry"), ("fraud",))
    trained.training.train(TrainingRequest("fraud", run_id="again", label_maturity_hours=30.0))
    land_history(lake, days=0.5, rate=0.5, seed=6, label_delay_scale=0.2, end=END + HALF_DAY)
    early = END - dt.timedelta(days=2) + dt.timedelta(hours=1)
    broken = [
        payment(f"negative-{n}", f"acct-broken-{n % 20}", -5.0, early + n * dt.timedelta(seconds=5))
        for n in range(600)
    ]
    land(lake, "payment.transaction", broken)
    refresh(lake, "run-2")
    return trained


def test_a_challenger_identical_to_the_champion_is_rejected_saying_so(
    models: Models, lake: Path
) -> None:
    result = gate(models, Lake(str(lake)), "fraud", 2, 1, FAST)
    assert not result.passed
    same, uplift, interval = result.reasons
    assert "exactly as the champion does: it is the same model" in same
    assert "uplift is +0.0000" in uplift and "[+0.0000, +0.0000]" in interval
    metrics = result.metrics
    assert metrics["uplift"] == metrics["uplift_ci_low"] == metrics["uplift_ci_high"] == 0
    # The holdout is the one the challenger was measured on when trained, read as of its
    # training data (the history landed since is not in it); the quality is unchanged.
    registered = models.registry.get_version("fraud", 2).metrics
    assert metrics["holdout_rows"] == registered["holdout_rows"]
    assert metrics["challenger_pr_auc"] == pytest.approx(registered["pr_auc"], abs=1e-4)
    assert metrics["quality_regressions"] == 0
    assert models.registry.get_version("fraud", 2).validation_status == "none"  # nothing written


def test_only_the_classifiers_have_a_gate(models: Models, lake: Path) -> None:
    with pytest.raises(UngatedModel, match="only fraud, maintenance"):
        gate(models, Lake(str(lake)), "recommendations", 2, 1)


def test_a_challenger_is_judged_on_its_own_data(models: Models, lake: Path) -> None:
    """A challenger trained on the newer history (the broken payments too), waiting longer for
    its labels: the holdout is its own, read with its wait, and its training data's quality
    is judged against the champion's."""
    longer = TrainingRequest("fraud", run_id="longer", label_maturity_hours=40.0)
    challenger = models.training.train(longer)
    result = gate(models, Lake(str(lake)), "fraud", challenger.version, 1, FAST)
    champion_rows = models.registry.get_version("fraud", 1).metrics["holdout_rows"]
    assert result.metrics["holdout_rows"] == challenger.metrics["holdout_rows"] != champion_rows
    assert result.metrics["challenger_pr_auc"] == pytest.approx(
        challenger.metrics["pr_auc"], abs=1e-4
    )
    assert not result.passed and result.metrics["quality_regressions"] == 1
    [quality] = [reason for reason in result.reasons if "input quality" in reason]
    assert quality.startswith("the input quality of amount regressed")
    assert re.search(r"out of range [1-9]\.\d\d% \(the champion's 0\.00%\)$", quality)
