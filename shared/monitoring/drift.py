"""Drift of one feature (or of the scores) between a reference sample and a current one, and
its verdict: none, warn or act.

The figures, from scipy where a test or distance is involved:

- `psi`, the population stability index, for every feature: `sum((q - p) * ln(q / p))` over
  bins of the reference. A numeric feature's bins come from the reference's deciles (`PSI_BINS`),
  each cut point a value of the reference; the cut points bound open intervals and are bins of
  their own, so that tied values (a 0/1 indicator, counts that are mostly 1, a constant) keep
  their mass apart from their neighbours' and a move off a tie shows. The end bins are open:
  values beyond the reference's range fall into them. A categorical feature's bins are its
  values, over both samples. An empty bin counts as `EPSILON`, about half a row in 5,000:
  a row falling where the reference had none adds about 1e-4, a tenth of the current window
  falling there adds 0.1 * ln(1,000) = 0.7.
- numeric features: the two-sample Kolmogorov-Smirnov statistic and p-value
  (`scipy.stats.ks_2samp`, asymptotic), on samples large enough to be judged only (below that
  the asymptotic p-value is poor, and scipy's exact one can fail on ties and warn); and the
  Wasserstein distance (`scipy.stats.wasserstein_distance`) in units of the reference's
  standard deviation, so that a mean shift of d standard deviations reads d. The standard
  deviation, not the interquartile range: counts and indicators have an IQR of 0. A constant
  reference has no spread: then the spread of both samples together is the unit, so that a
  constant that starts to move reads as a large, finite distance.
- categorical features: the Jensen-Shannon distance in base 2, from 0 to 1
  (`scipy.spatial.distance.jensenshannon`), over the union of both samples' values.

scipy is imported where a statistic needs it: the app imports this module at start, and half
a second of imports would lengthen every cold start.

Values that are not finite (NaN, a null; infinities) are left out here: they are what the input
quality check counts (`monitoring.quality`).

The verdict (`judge`), chosen so that two windows of 5,000 rows from one distribution rarely
raise anything while a mean shift of half a standard deviation in any one feature is caught
(`python -m benchmarks drift` measures both):

- act: PSI >= 0.25;
- warn: PSI >= 0.1; or, numeric, the KS test rejects at `alpha` (the family's level shared out
  over the report's tests, Bonferroni) and the distribution moved materially (normalised
  Wasserstein >= `MATERIAL`); or, categorical, Jensen-Shannon >= `MATERIAL`;
- none otherwise, and when either sample holds fewer than `MIN_ROWS` values (not judged).

PSI carries the issue's thresholds, but it is blind to small moves of a continuous feature (0.2
standard deviation of a Gaussian gives a PSI near 0.04), which the KS test at 5,000 rows sees.
The KS test alone, uncorrected, raised a false alarm in 28% (payments) to 49% (telemetry) of
pairs of windows from one distribution in the benchmark; Bonferroni bounds the chance of any
false alarm per report by the family level. The test's power grows with rows without bound,
so the material floor keeps a certain but negligible move (a twentieth of a standard
deviation, which it sees in a million rows) from warning.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

Verdict = Literal["none", "warn", "act"]
Kind = Literal["numeric", "categorical"]

PSI_WARN, PSI_ACT = 0.1, 0.25
MATERIAL = 0.1  # a move worth a warning: 0.1 standard deviation, or 0.1 of Jensen-Shannon
FAMILY_ALPHA = 0.01  # the chance of a false alarm per report from the KS tests, at most
PSI_BINS = 10
EPSILON = 1e-4
MIN_ROWS = 1_000  # below it, PSI's own noise (0.04 on average at 1,000 rows) nears 0.1
MAX_DISTANCE = 1e6  # a normalised distance's cap: a reference with almost no spread can
# otherwise put it past the largest float


class FeatureDrift(msgspec.Struct, frozen=True, kw_only=True):
    """One feature's figures between the two samples, and its verdict. The statistics of the
    other kind are None (KS and Wasserstein for numeric features, Jensen-Shannon for
    categorical ones), and so is the KS test of samples too small to be judged."""

    name: str
    kind: Kind
    reference_rows: int
    current_rows: int
    psi: float
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    jensen_shannon: float | None = None
    judged: bool
    verdict: Verdict

    @property
    def drifts(self) -> bool:
        return self.verdict != "none"


def present(values: np.ndarray) -> np.ndarray:
    """The finite values, as float64."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def population_stability(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """PSI between two histograms over the same bins; 0 when either is empty. Never negative:
    each term's two factors have the same sign."""
    reference_total, current_total = reference_counts.sum(), current_counts.sum()
    if reference_total == 0 or current_total == 0:
        return 0.0
    p = np.maximum(reference_counts / reference_total, EPSILON)
    q = np.maximum(current_counts / current_total, EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def cut_points(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """The reference's distinct deciles (for 10 bins), each a value of the reference."""
    levels = np.arange(1, bins) / bins
    return np.unique(np.quantile(reference, levels, method="inverted_cdf"))


def bin_counts(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Counts per bin: bin 2i holds the values strictly between cut points i - 1 and i (the
    first and last are open-ended), bin 2i + 1 those equal to cut point i."""
    index = np.searchsorted(cuts, values, "left") + np.searchsorted(cuts, values, "right")
    return np.bincount(index, minlength=2 * len(cuts) + 1)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI of a numeric feature over bins from the reference's quantiles."""
    ref, cur = present(reference), present(current)
    if ref.size == 0 or cur.size == 0:
        return 0.0
    cuts = cut_points(ref, bins)
    return population_stability(bin_counts(ref, cuts), bin_counts(cur, cuts))


def category_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's count of every value either holds, in the order of the values."""
    ref, cur = present(reference), present(current)
    values = np.unique(np.concatenate((ref, cur)))
    return (
        np.bincount(np.searchsorted(values, ref), minlength=values.size),
        np.bincount(np.searchsorted(values, cur), minlength=values.size),
    )


def category_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of a categorical feature: one bin per value."""
    return population_stability(*category_counts(reference, current))


def kolmogorov_smirnov(reference: np.ndarray, current: np.ndarray) -> tuple[float, float] | None:
    """The two-sample KS statistic and p-value; None when either sample has fewer than
    `MIN_ROWS` values."""
    from scipy.stats import ks_2samp

    ref, cur = present(reference), present(current)
    if min(ref.size, cur.size) < MIN_ROWS:
        return None
    result = ks_2samp(ref, cur, method="asymp")
    return float(result.statistic), float(result.pvalue)


def normalised_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """The Wasserstein distance in units of the reference's standard deviation (see the
    module's docstring); 0 when a sample is empty or both are one same constant."""
    from scipy.stats import wasserstein_distance

    ref, cur = present(reference), present(current)
    if ref.size == 0 or cur.size == 0:
        return 0.0
    largest = max(float(np.max(np.abs(ref))), float(np.max(np.abs(cur))))
    if largest == 0.0:
        return 0.0
    # A power of two brings every value into [-1, 1] exactly, so that neither the distance
    # nor the variance can overflow (1e300 squared), and their ratio is unchanged.
    exponent = int(np.frexp(largest)[1])
    ref, cur = np.ldexp(ref, -exponent), np.ldexp(cur, -exponent)
    if ref.min() == ref.max():
        spread = float(np.std(np.concatenate((ref, cur))))
    else:
        spread = float(np.std(ref))
    if spread == 0.0:
        return 0.0
    return min(float(wasserstein_distance(ref, cur)) / spread, MAX_DISTANCE)


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """The Jensen-Shannon distance (base 2, 0 to 1) between the samples' value frequencies;
    0 when a sample is empty."""
    from scipy.spatial.distance import jensenshannon

    ref_counts, cur_counts = category_counts(reference, current)
    if ref_counts.sum() == 0 or cur_counts.sum() == 0:
        return 0.0
    distance = float(jensenshannon(ref_counts, cur_counts, base=2))
    # Rounding can take the divergence a hair below 0, whose square root is NaN.
    return min(distance, 1.0) if distance > 0 else 0.0


def judge(
    psi: float,
    *,
    alpha: float,
    ks_pvalue: float | None = None,
    wasserstein: float | None = None,
    jensen_shannon: float | None = None,
) -> Verdict:
    """The verdict on a judged feature's figures (the rule is in the module's docstring)."""
    if psi >= PSI_ACT:
        return "act"
    if psi >= PSI_WARN:
        return "warn"
    if ks_pvalue is not None and wasserstein is not None:
        if ks_pvalue < alpha and wasserstein >= MATERIAL:
            return "warn"
    if jensen_shannon is not None and jensen_shannon >= MATERIAL:
        return "warn"
    return "none"


def feature_drift(
    name: str,
    reference: np.ndarray,
    current: np.ndarray,
    *,
    categorical: bool,
    alpha: float,
) -> FeatureDrift:
    """A feature's figures and verdict; `alpha` is the level of its KS test."""
    ref, cur = present(reference), present(current)
    judged = min(ref.size, cur.size) >= MIN_ROWS
    if categorical:
        index = category_psi(ref, cur)
        distance = jensen_shannon(ref, cur)
        verdict = judge(index, alpha=alpha, jensen_shannon=distance)
        return FeatureDrift(
            name=name,
            kind="categorical",
            reference_rows=int(ref.size),
            current_rows=int(cur.size),
            psi=index,
            jensen_shannon=distance,
            judged=judged,
            verdict=verdict if judged else "none",
        )
    index = psi(ref, cur)
    tested = kolmogorov_smirnov(ref, cur)
    statistic, pvalue = tested if tested is not None else (None, None)
    moved = normalised_wasserstein(ref, cur)
    verdict = judge(index, alpha=alpha, ks_pvalue=pvalue, wasserstein=moved)
    return FeatureDrift(
        name=name,
        kind="numeric",
        reference_rows=int(ref.size),
        current_rows=int(cur.size),
        psi=index,
        ks_statistic=statistic,
        ks_pvalue=pvalue,
        wasserstein=moved,
        judged=judged,
        verdict=verdict if judged else "none",
    )


def dataset_drift(features: list[FeatureDrift] | tuple[FeatureDrift, ...]) -> bool:
    """At least half the judged features drift (warn or act)."""
    judged = [feature for feature in features if feature.judged]
    drifting = sum(feature.drifts for feature in judged)
    return bool(judged) and 2 * drifting >= len(judged)
