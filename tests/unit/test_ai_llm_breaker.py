"""A deployment's circuit breaker on a fake clock, and reading a 429's Retry-After."""

from __future__ import annotations

import email.utils

import pytest

from shared.ai.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from shared.ai.upstream import retry_after

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = BreakerPolicy(failures_to_open=3, cooldown_s=10.0, retry_after_cap_s=30.0)


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(POLICY, clock)


def test_it_opens_after_consecutive_failures_only() -> None:
    clock = Clock()
    health = breaker(clock)
    health.failed()
    health.failed()
    health.succeeded()  # a success clears the count
    health.failed()
    health.failed()
    assert health.state is BreakerState.CLOSED and health.try_acquire()
    health.failed()
    assert health.state is BreakerState.OPEN and not health.try_acquire()
    assert health.retry_in() == pytest.approx(10.0)


def test_after_its_cooldown_one_probe_goes_through_and_its_success_closes_it() -> None:
    clock = Clock()
    health = breaker(clock)
    for _ in range(3):
        health.failed()
    clock.now += 10.0
    assert health.state is BreakerState.HALF_OPEN
    assert health.try_acquire()
    assert not health.try_acquire()  # one probe at a time
    health.succeeded()
    assert health.state is BreakerState.CLOSED and health.try_acquire()


def test_a_failed_probe_opens_it_again_at_once() -> None:
    clock = Clock()
    health = breaker(clock)
    for _ in range(3):
        health.failed()
    clock.now += 10.0
    assert health.try_acquire()
    health.failed()
    assert health.state is BreakerState.OPEN
    assert health.retry_in() == pytest.approx(10.0)


def test_a_released_probe_lets_the_next_request_probe() -> None:
    clock = Clock()
    health = breaker(clock)
    health.throttled(5.0)
    clock.now += 5.0
    assert health.try_acquire()
    health.release()
    assert health.try_acquire()


@pytest.mark.parametrize(
    ("retry_after_s", "benched"), [(2.0, 2.0), (86_400.0, 30.0), (None, 10.0), (0.0, 0.0)]
)
def test_a_429_benches_it_for_its_retry_after_capped(
    retry_after_s: float | None, benched: float
) -> None:
    clock = Clock()
    health = breaker(clock)
    assert health.throttled(retry_after_s) == benched
    assert health.retry_in() == pytest.approx(benched)
    clock.now += benched
    assert health.try_acquire()


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_after({"Retry-After": "3", "retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "86400"}) == 86_400.0


def test_retry_after_may_be_an_http_date() -> None:
    when = email.utils.formatdate(1_000_060.0, usegmt=True)
    assert retry_after({"Retry-After": when}, now=lambda: 1_000_000.0) == 60.0
    assert retry_after({"Retry-After": when}, now=lambda: 2_000_000.0) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "-5", "nan", "inf"])
def test_an_unreadable_retry_after_is_none(value: str) -> None:
    assert retry_after({"Retry-After": value}) is None
