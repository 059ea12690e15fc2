"""The deployment pool without the SDK: priority order, same-model failover, refusals, benching,
and the retry time when nothing is available."""

from __future__ import annotations

import asyncio

import pytest

from shared.ai.breaker import BreakerPolicy, BreakerState
from shared.ai.errors import (
    ContentFiltered,
    LlmError,
    NoDeploymentAvailable,
    UnknownModel,
)
from shared.ai.pool import DeploymentPool, Outcome, Verdict
from shared.ai.settings import Deployment

pytestmark = pytest.mark.unit

EAST = Deployment("east", "gpt-4o", "https://east", 0)
WEST = Deployment("west", "gpt-4o", "https://west", 1)
MINI = Deployment("mini", "gpt-4o-mini", "https://east", 2)
POLICY = BreakerPolicy(failures_to_open=2, cooldown_s=10.0, retry_after_cap_s=30.0)


class Throttled(Exception):
    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s


class Broken(Exception):
    pass


class Filtered(Exception):
    pass


def classify(error: Exception, deployment: Deployment) -> Outcome | None:
    if isinstance(error, Throttled):
        return Outcome(Verdict.THROTTLED, "429", retry_after_s=error.retry_after_s)
    if isinstance(error, Broken):
        return Outcome(Verdict.FAULT, "HTTP 500")
    if isinstance(error, Filtered):
        refusal = ContentFiltered(deployment.name, {"error": {"code": "content_filter"}})
        return Outcome(Verdict.REFUSED, "content filter", error=refusal)
    return None


class Upstream:
    """Answers per deployment from a script of exceptions; records who was asked."""

    def __init__(self, **failures: Exception) -> None:
        self.failures = failures
        self.asked: list[str] = []

    async def __call__(self, deployment: Deployment) -> str:
        self.asked.append(deployment.name)
        failure = self.failures.pop(deployment.name, None)
        if failure is not None:
            raise failure
        return f"answer from {deployment.name}"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_first_deployment_by_priority_answers() -> None:
    pool = DeploymentPool([EAST, WEST, MINI], POLICY)
    upstream = Upstream()
    answer, lease = await pool.acquire("gpt-4o", upstream, classify)
    lease.succeeded()
    assert (answer, upstream.asked) == ("answer from east", ["east"])


async def test_a_throttled_deployment_is_benched_and_the_next_of_its_model_answers() -> None:
    clock = Clock()
    pool = DeploymentPool([EAST, WEST, MINI], POLICY, clock)
    upstream = Upstream(east=Throttled(86_400.0))
    answer, _ = await pool.acquire("gpt-4o", upstream, classify)
    assert answer == "answer from west"
    assert pool.state("east") is BreakerState.OPEN
    await pool.acquire("gpt-4o", upstream, classify)
    assert upstream.asked == ["east", "west", "west"]
    clock.now += 30.0  # the cap, not a day
    assert pool.state("east") is BreakerState.HALF_OPEN


async def test_failover_never_leaves_the_model() -> None:
    pool = DeploymentPool([EAST, MINI], POLICY)
    upstream = Upstream(east=Broken())
    with pytest.raises(NoDeploymentAvailable) as raised:
        await pool.acquire("gpt-4o", upstream, classify)
    assert upstream.asked == ["east"]
    assert raised.value.model == "gpt-4o"
    assert raised.value.retry_after == "1"  # east failed once: it may be tried again at once


async def test_a_refusal_is_raised_at_once_and_clears_the_deployment() -> None:
    pool = DeploymentPool([EAST, WEST], POLICY)
    await _fail_once_on_east(pool, Upstream(east=Broken()))  # one failure counted against east
    upstream = Upstream(east=Filtered())
    with pytest.raises(ContentFiltered):
        await pool.acquire("gpt-4o", upstream, classify)
    assert upstream.asked == ["east"]
    await _fail_once_on_east(pool, Upstream(east=Broken()))
    assert pool.state("east") is BreakerState.CLOSED  # the count restarted after the refusal


async def _fail_once_on_east(pool: DeploymentPool, upstream: Upstream) -> None:
    _, lease = await pool.acquire("gpt-4o", upstream, classify)
    lease.succeeded()


async def test_with_every_deployment_benched_the_soonest_retry_time_is_given() -> None:
    pool = DeploymentPool([EAST, WEST], POLICY, Clock())
    upstream = Upstream(east=Throttled(20.0), west=Throttled(5.0))
    with pytest.raises(NoDeploymentAvailable) as raised:
        await pool.acquire("gpt-4o", upstream, classify)
    assert raised.value.retry_after == "5"
    assert [a.deployment for a in raised.value.attempts] == ["east", "west"]
    assert isinstance(raised.value, LlmError) and raised.value.status == 429
    with pytest.raises(NoDeploymentAvailable) as again:
        await pool.acquire("gpt-4o", upstream, classify)
    assert upstream.asked == ["east", "west"]  # benched deployments are not asked
    assert "benched" in str(again.value)


async def test_an_unknown_model_names_the_models_served() -> None:
    pool = DeploymentPool([EAST, MINI], POLICY)
    with pytest.raises(UnknownModel) as raised:
        await pool.acquire("gpt-5", Upstream(), classify)
    assert raised.value.available == ("gpt-4o", "gpt-4o-mini")


async def test_a_foreign_error_or_a_cancellation_leaves_no_verdict() -> None:
    clock = Clock()
    pool = DeploymentPool([EAST], POLICY, clock)
    throttling = Upstream(east=Throttled(1.0))
    with pytest.raises(NoDeploymentAvailable):
        await pool.acquire("gpt-4o", throttling, classify)
    clock.now += 1.0  # half-open: the next request is the probe

    async def cancelled(deployment: Deployment) -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await pool.acquire("gpt-4o", cancelled, classify)
    with pytest.raises(KeyError):  # not the upstream's: raised as it is
        await pool.acquire("gpt-4o", Upstream(east=KeyError("bug")), classify)
    answer, _ = await pool.acquire("gpt-4o", Upstream(), classify)  # the probe was released
    assert answer == "answer from east"
