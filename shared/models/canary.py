"""A canary step's check: the challenger against the champion on the same traffic, from what
each served while the step ran (`shared.models.serving_stats`).

The challenger fails the step when
- its error rate (rows its model failed on) is more than `max_error_increase` above the
  champion's;
- its p99 time to score one record is over `latency_ratio` times the champion's plus
  `latency_slack_ms` (the slack keeps a sub-millisecond p99 from failing on a shared
  machine's noise), judged once each version has `min_probes` timed records;
- its scores' PSI against the champion's is `max_score_psi` (0.25, the act level) or more: the
  entities are split by a hash, so both saw the same population, and a challenger that scores
  it very differently is not the model that passed the gate.

With fewer than `min_rows` rows scored by either version there is nothing to judge yet: the
verdict is `wait`, and the rollout waits one more step's time (at most `max_waits` times, then
rolls back: a model nobody could check does not go on to more traffic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.models.serving_stats import Observed
from shared.monitoring.drift import psi

Verdict = Literal["pass", "fail", "wait"]
STEPS = (10, 25, 50, 100)


@dataclass(frozen=True)
class CanaryPolicy:
    steps: tuple[int, ...] = STEPS
    step_wait_s: float = 900.0  # MODEL_CANARY_STEP_S
    min_rows: int = 200
    max_waits: int = 3
    max_error_increase: float = 0.01
    latency_ratio: float = 1.5
    latency_slack_ms: float = 2.0
    min_probes: int = 50
    max_score_psi: float = 0.25


@dataclass(frozen=True)
class CanaryCheck:
    verdict: Verdict
    reasons: tuple[str, ...]
    metrics: dict[str, float]


def check(champion: Observed, challenger: Observed, policy: CanaryPolicy) -> CanaryCheck:
    """The step's verdict, the failed checks (or why it waits), and the figures."""
    metrics = {
        "champion_rows": float(champion.rows),
        "challenger_rows": float(challenger.rows),
        "champion_error_rate": champion.error_rate,
        "challenger_error_rate": challenger.error_rate,
    }
    scored = min(champion.rows + champion.errors, challenger.rows + challenger.errors)
    if scored < policy.min_rows:
        reason = (
            f"too little traffic to judge: {challenger.rows + challenger.errors} challenger "
            f"and {champion.rows + champion.errors} champion rows, {policy.min_rows} needed each"
        )
        return CanaryCheck("wait", (reason,), metrics)
    reasons = []
    if challenger.error_rate > champion.error_rate + policy.max_error_increase:
        reasons.append(
            f"error rate {challenger.error_rate:.2%} against the champion's "
            f"{champion.error_rate:.2%} (at most {policy.max_error_increase:.0%} more)"
        )
    mine, theirs = challenger.p99_ms, champion.p99_ms
    probed = min(challenger.latency_ms.size, champion.latency_ms.size) >= policy.min_probes
    if mine is not None and theirs is not None and probed:
        metrics |= {"champion_p99_ms": theirs, "challenger_p99_ms": mine}
        limit = theirs * policy.latency_ratio + policy.latency_slack_ms
        if mine > limit:
            reasons.append(
                f"p99 time of one record {mine:.3f} ms against the champion's {theirs:.3f} ms "
                f"(at most {limit:.3f} ms)"
            )
    if challenger.scores.size and champion.scores.size:
        drift = psi(champion.scores, challenger.scores)
        metrics["score_psi"] = drift
        if drift >= policy.max_score_psi:
            reasons.append(
                f"score PSI {drift:.3f} against the champion's scores on the same traffic "
                f"(below {policy.max_score_psi} required)"
            )
    if challenger.rows == 0:
        reasons.append("the challenger scored no row")
    return CanaryCheck("fail" if reasons else "pass", tuple(reasons), metrics)
