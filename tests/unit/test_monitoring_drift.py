"""Drift statistics: known answers, scipy's own figures, properties over any input (hostile
ones included), the verdict rule, and the rule's false alarms and detections on seeded samples."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance

from shared.monitoring.drift import (
    EPSILON,
    FAMILY_ALPHA,
    MAX_DISTANCE,
    MIN_ROWS,
    FeatureDrift,
    Verdict,
    category_psi,
    dataset_drift,
    feature_drift,
    jensen_shannon,
    judge,
    kolmogorov_smirnov,
    normalised_wasserstein,
    psi,
)

pytestmark = pytest.mark.unit

ALPHA = FAMILY_ALPHA / 15  # the fraud model's 10 numeric features and its scores
ROWS = 5_000

any_floats = st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=60)
hostile = st.lists(
    st.sampled_from([0.0, -0.0, 1.0, 5e-324, -5e-324, 1e300, -1e300, 1.7e308, -1.7e308])
    | st.floats(allow_nan=True, allow_infinity=True),
    max_size=60,
)
finite_hostile = st.lists(
    st.sampled_from([0.0, -0.0, 1.0, 5e-324, 1e300, -1e300, 1.7e308, -1.7e308])
    | st.floats(allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=60,
)
# Values whose doubling is exact and finite.
moderate = st.lists(st.floats(min_value=-1e300, max_value=1e300), min_size=1, max_size=60)


def arr(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# Known answers


def test_identical_samples_have_no_drift() -> None:
    sample = np.random.default_rng(1).lognormal(3, 1, ROWS)
    assert psi(sample, sample) == 0.0
    assert kolmogorov_smirnov(sample, sample) == (0.0, 1.0)
    assert normalised_wasserstein(sample, sample) == 0.0
    assert category_psi(sample, sample) == 0.0
    assert jensen_shannon(sample, sample) == 0.0


def test_psi_of_a_shift_by_one_against_a_hand_computed_value() -> None:
    # The reference's deciles are 1 to 9, so its bins hold 0.1 each: the values 1 to 9 and the
    # open end above 9 (10). Shifted by one, nothing is 1 and the top end holds 10 and 11.
    reference = arr([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    current = reference + 1
    expected = (EPSILON - 0.1) * math.log(EPSILON / 0.1) + (0.2 - 0.1) * math.log(0.2 / 0.1)
    assert psi(reference, current) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.7594, abs=1e-4)


def test_psi_of_a_categorical_feature_against_a_hand_computed_value() -> None:
    reference = arr([0.0] * 80 + [1.0] * 20)
    current = arr([0.0] * 60 + [1.0] * 40)
    expected = (0.6 - 0.8) * math.log(0.6 / 0.8) + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert category_psi(reference, current) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.1962, abs=1e-4)


def test_values_beyond_the_reference_fall_into_its_end_bins() -> None:
    reference = np.arange(1.0, 101.0)  # deciles 10 to 90: the end bins are < 10 and > 90
    far = arr([-1e300] * 50 + [1e300] * 50)
    near = arr([0.0] * 50 + [100.5] * 50)
    assert psi(reference, far) == psi(reference, near) > 1


def test_a_constant_feature_that_moves_either_way_drifts() -> None:
    constant = np.full(ROWS, 5.0)
    assert psi(constant, constant) == 0.0
    assert psi(constant, np.full(ROWS, 6.0)) > 1
    assert psi(constant, np.full(ROWS, 4.0)) > 1  # a tie is a bin of its own, apart from below
    # No spread in the reference: the pooled one (0.5) is the unit, and the distance is 1.
    assert normalised_wasserstein(constant, np.full(ROWS, 6.0)) == pytest.approx(2.0)
    assert jensen_shannon(constant, np.full(ROWS, 6.0)) == 1.0


def test_ks_is_scipys_on_samples_large_enough_to_judge() -> None:
    rng = np.random.default_rng(2)
    large, other = rng.normal(size=3_000), rng.normal(0.1, 1, MIN_ROWS)
    expected = ks_2samp(large, other, method="asymp")
    assert kolmogorov_smirnov(large, other) == (expected.statistic, expected.pvalue)
    assert kolmogorov_smirnov(large, other[:-1]) is None
    drift = feature_drift("x", large, other[:-1], categorical=False, alpha=ALPHA)
    assert drift.ks_statistic is None and drift.ks_pvalue is None


def test_wasserstein_is_scipys_in_reference_standard_deviations() -> None:
    rng = np.random.default_rng(3)
    reference, current = rng.lognormal(3, 1, ROWS), rng.lognormal(3.2, 1, ROWS)
    expected = wasserstein_distance(reference, current) / np.std(reference)
    assert normalised_wasserstein(reference, current) == pytest.approx(expected, rel=1e-9)
    # A mean shift of half a standard deviation reads half.
    assert normalised_wasserstein(reference, reference + 0.5 * np.std(reference)) == (
        pytest.approx(0.5, rel=1e-9)
    )


def test_jensen_shannon_is_scipys_over_the_union_of_values() -> None:
    reference = arr([0.1] * 50 + [0.4] * 30 + [0.8] * 20)
    current = arr([0.1] * 40 + [0.8] * 40 + [0.9] * 20)  # 0.4 is gone, 0.9 is new
    expected = jensenshannon([0.5, 0.3, 0.2, 0.0], [0.4, 0.0, 0.4, 0.2], base=2)
    assert jensen_shannon(reference, current) == pytest.approx(expected, rel=1e-12)


def test_nan_and_infinities_are_left_out() -> None:
    rng = np.random.default_rng(4)
    reference, current = rng.normal(size=ROWS), rng.normal(0.3, 1, ROWS)
    spoiled = np.concatenate((current, [np.nan] * 100, [np.inf, -np.inf]))
    assert psi(reference, spoiled) == psi(reference, current)
    assert kolmogorov_smirnov(reference, spoiled) == kolmogorov_smirnov(reference, current)
    assert normalised_wasserstein(reference, spoiled) == normalised_wasserstein(reference, current)
    drift = feature_drift("x", reference, spoiled, categorical=False, alpha=ALPHA)
    assert drift.current_rows == ROWS


# Properties over any input


def _finite_figures(drift: FeatureDrift) -> None:
    figures = [drift.psi, drift.ks_statistic, drift.ks_pvalue, drift.wasserstein]
    figures.append(drift.jensen_shannon)
    assert all(math.isfinite(f) for f in figures if f is not None)
    assert b"NaN" not in msgspec.json.encode(drift) and b"Infinity" not in msgspec.json.encode(
        drift
    )


@settings(max_examples=300, deadline=None)
@given(hostile, hostile)
def test_every_figure_is_finite_and_in_range_for_any_input(
    reference: list[float], current: list[float]
) -> None:
    ref, cur = arr(reference), arr(current)
    assert 0.0 <= psi(ref, cur) < 50
    assert 0.0 <= category_psi(ref, cur) < 50
    assert 0.0 <= normalised_wasserstein(ref, cur) <= MAX_DISTANCE
    assert 0.0 <= jensen_shannon(ref, cur) <= 1.0
    for categorical in (False, True):
        _finite_figures(feature_drift("x", ref, cur, categorical=categorical, alpha=ALPHA))


@settings(max_examples=200, deadline=None)
@given(finite_hostile, finite_hostile)
def test_the_ks_test_of_large_samples_is_in_range_for_any_values(
    reference: list[float], current: list[float]
) -> None:
    ref, cur = np.resize(arr(reference), MIN_ROWS), np.resize(arr(current), 2 * MIN_ROWS)
    tested = kolmogorov_smirnov(ref, cur)
    assert tested is not None
    statistic, pvalue = tested
    assert 0.0 <= statistic <= 1.0 and 0.0 <= pvalue <= 1.0
    assert kolmogorov_smirnov(cur, ref) == (pytest.approx(statistic), pytest.approx(pvalue))
    for categorical in (False, True):
        _finite_figures(feature_drift("x", ref, cur, categorical=categorical, alpha=ALPHA))


@given(any_floats)
def test_a_sample_against_itself_never_drifts(values: list[float]) -> None:
    sample = arr(values)
    assert psi(sample, sample) == 0.0
    assert category_psi(sample, sample) == 0.0
    assert normalised_wasserstein(sample, sample) == 0.0
    assert jensen_shannon(sample, sample) == 0.0
    large = np.resize(sample, 2 * MIN_ROWS)
    assert kolmogorov_smirnov(large, large) in (None, (0.0, 1.0))  # None: no finite values


@given(any_floats, any_floats)
def test_categorical_figures_are_symmetric(first: list[float], second: list[float]) -> None:
    a, b = arr(first), arr(second)
    assert category_psi(a, b) == pytest.approx(category_psi(b, a), rel=1e-9, abs=1e-12)
    assert jensen_shannon(a, b) == pytest.approx(jensen_shannon(b, a), rel=1e-9, abs=1e-12)


@given(moderate, moderate)
def test_psi_and_the_normalised_distance_ignore_the_unit(
    first: list[float], second: list[float]
) -> None:
    a, b = arr(first), arr(second)
    assert psi(2 * a, 2 * b) == psi(a, b)  # bins follow the reference's own values
    assert normalised_wasserstein(4 * a, 4 * b) == pytest.approx(
        normalised_wasserstein(a, b), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize(
    "values",
    [
        [],
        [np.nan] * 10,
        [np.inf, -np.inf],
        [7.0],
        [1e300] * 3,
        [253402300799.0] * 2,
        [-1e300, 1e300],
    ],
    ids=["empty", "all-null", "infinities", "one value", "1e300", "year 9999 in seconds", "±1e300"],
)
def test_degenerate_samples_have_finite_figures(values: list[float]) -> None:
    sample = arr(values)
    normal = np.random.default_rng(5).normal(size=50)
    for reference, current in ((sample, normal), (normal, sample), (sample, sample)):
        for categorical in (False, True):
            drift = feature_drift("x", reference, current, categorical=categorical, alpha=ALPHA)
            _finite_figures(drift)
            assert not drift.judged and drift.verdict == "none"


# The verdict rule


@pytest.mark.parametrize(
    ("figures", "verdict"),
    [
        ({"psi": 0.25}, "act"),
        ({"psi": 0.2499}, "warn"),
        ({"psi": 0.1}, "warn"),
        ({"psi": 0.0999}, "none"),
        ({"psi": 0.05, "ks_pvalue": ALPHA / 2, "wasserstein": 0.1}, "warn"),
        ({"psi": 0.05, "ks_pvalue": ALPHA / 2, "wasserstein": 0.0999}, "none"),  # negligible
        ({"psi": 0.05, "ks_pvalue": ALPHA, "wasserstein": 2.0}, "none"),  # not significant
        ({"psi": 0.05, "jensen_shannon": 0.1}, "warn"),
        ({"psi": 0.05, "jensen_shannon": 0.0999}, "none"),
        ({"psi": 0.3, "ks_pvalue": 1.0, "wasserstein": 0.0}, "act"),
    ],
)
def test_the_verdict_rule(figures: dict[str, float], verdict: str) -> None:
    assert judge(alpha=ALPHA, **figures) == verdict


def test_too_few_values_are_not_judged() -> None:
    rng = np.random.default_rng(6)
    few = feature_drift(
        "x", rng.normal(size=MIN_ROWS - 1), rng.normal(5, 1, ROWS), categorical=False, alpha=ALPHA
    )
    assert few.psi > 1 and not few.judged and few.verdict == "none"
    enough = feature_drift(
        "x", rng.normal(size=MIN_ROWS), rng.normal(5, 1, ROWS), categorical=False, alpha=ALPHA
    )
    assert enough.judged and enough.verdict == "act"


def _drift(verdict: Verdict, judged: bool = True) -> FeatureDrift:
    return FeatureDrift(
        name="x",
        kind="numeric",
        reference_rows=ROWS,
        current_rows=ROWS,
        psi=0.0,
        judged=judged,
        verdict=verdict,
    )


def test_dataset_drift_is_at_least_half_the_judged_features() -> None:
    assert dataset_drift([_drift("warn")] * 7 + [_drift("none")] * 7)
    assert not dataset_drift([_drift("act")] * 6 + [_drift("none")] * 8)
    assert dataset_drift([_drift("warn")] * 3 + [_drift("none")] * 3 + [_drift("none", False)] * 8)
    assert not dataset_drift([_drift("none", False)] * 4)
    assert not dataset_drift([])


# The rule on seeded samples: false alarms and detections at 5,000 rows


def _verdict(reference: np.ndarray, current: np.ndarray, categorical: bool = False) -> str:
    return feature_drift("x", reference, current, categorical=categorical, alpha=ALPHA).verdict


@pytest.mark.parametrize("seed", range(20))
def test_a_half_sd_shift_is_flagged_and_the_same_distribution_is_not(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for draw in (rng.normal, rng.exponential):
        reference, same = draw(size=ROWS), draw(size=ROWS)
        shifted = draw(size=ROWS) + 0.5 * np.std(reference)
        assert _verdict(reference, same) == "none"
        assert _verdict(reference, shifted) in ("warn", "act")


@pytest.mark.parametrize("seed", range(10))
def test_the_ks_test_catches_a_shift_psi_misses(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    reference, current = rng.normal(size=ROWS), rng.normal(0.2, 1, ROWS)
    drift = feature_drift("x", reference, current, categorical=False, alpha=ALPHA)
    assert drift.psi < 0.1 and drift.verdict == "warn"


@pytest.mark.parametrize("seed", range(10))
def test_a_categorical_feature_flags_a_change_of_frequencies_only(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    reference = (rng.random(ROWS) < 0.3).astype(float)
    assert _verdict(reference, (rng.random(ROWS) < 0.3).astype(float), True) == "none"
    assert _verdict(reference, (rng.random(ROWS) < 0.5).astype(float), True) == "warn"
