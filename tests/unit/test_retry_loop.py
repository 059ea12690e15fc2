"""The retry loop: attempts, retry contexts, delays, giving up, stopping, and what it logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import azure.functions as func
import pytest

from devhost.appsettings import AppSettings
from devhost.indexing import index_app
from devhost.invocation import Invoker
from devhost.retry import (
    EXPONENTIAL_BACKOFF,
    FIXED_DELAY,
    Attempt,
    RetryOutcome,
    RetryPolicy,
    run_with_retries,
)

pytestmark = pytest.mark.unit


class FlakyFunction:
    """An attempt runner that fails its first `failures` attempts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[Attempt] = []
        self.times: list[float] = []

    async def __call__(self, attempt: Attempt) -> BaseException | None:
        self.attempts.append(attempt)
        self.times.append(time.monotonic())
        if len(self.attempts) <= self.failures:
            return RuntimeError(f"failure {len(self.attempts)}")
        return None


def _events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "devhost.retry"
    ]


async def test_a_failing_execution_is_retried_until_it_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky = FlakyFunction(failures=2)
    policy = RetryPolicy(FIXED_DELAY, 5, delay_s=0.05)
    with caplog.at_level(logging.INFO, logger="devhost.retry"):
        outcome = await run_with_retries(
            policy, flaky, function="f", stopping=asyncio.Event(), log_fields={"partition": 3}
        )
    assert outcome is RetryOutcome.SUCCEEDED
    assert [(a.retry_count, a.max_retry_count) for a in flaky.attempts] == [(0, 5), (1, 5), (2, 5)]
    assert flaky.attempts[0].error is None
    assert (
        str(flaky.attempts[1].error) == "failure 1" and str(flaky.attempts[2].error) == "failure 2"
    )
    gaps = [later - earlier for earlier, later in zip(flaky.times, flaky.times[1:], strict=False)]
    assert all(gap >= 0.045 for gap in gaps), gaps
    retries = _events(caplog)
    assert [(e["event"], e["retry_count"]) for e in retries] == [("retry", 1), ("retry", 2)]
    assert retries[0] == {
        "event": "retry",
        "function": "f",
        "max_retry_count": 5,
        "partition": 3,
        "retry_count": 1,
        "delay_ms": 50.0,
        "error": "RuntimeError: failure 1",
    }


async def test_after_the_last_retry_the_execution_fails(caplog: pytest.LogCaptureFixture) -> None:
    flaky = FlakyFunction(failures=10)
    policy = RetryPolicy(FIXED_DELAY, 2, delay_s=0.0)
    with caplog.at_level(logging.INFO, logger="devhost.retry"):
        outcome = await run_with_retries(policy, flaky, function="f", stopping=asyncio.Event())
    assert outcome is RetryOutcome.FAILED
    assert [a.retry_count for a in flaky.attempts] == [0, 1, 2]
    assert _events(caplog)[-1] == {
        "event": "retries_exhausted",
        "function": "f",
        "max_retry_count": 2,
        "retries": 2,
    }


async def test_zero_retries_and_no_policy_run_once() -> None:
    once = FlakyFunction(failures=1)
    outcome = await run_with_retries(
        RetryPolicy(FIXED_DELAY, 0), once, function="f", stopping=asyncio.Event()
    )
    assert outcome is RetryOutcome.FAILED and len(once.attempts) == 1
    plain = FlakyFunction(failures=1)
    outcome = await run_with_retries(None, plain, function="f", stopping=asyncio.Event())
    assert outcome is RetryOutcome.FAILED
    # Without a policy the host sends no retry context: the worker reads 0 and 0.
    assert plain.attempts == [Attempt(0, 0)]


async def test_backoff_delays_grow_between_attempts(caplog: pytest.LogCaptureFixture) -> None:
    flaky = FlakyFunction(failures=3)
    policy = RetryPolicy(EXPONENTIAL_BACKOFF, -1, minimum_s=0.04, maximum_s=0.1)
    with caplog.at_level(logging.INFO, logger="devhost.retry"):
        await run_with_retries(policy, flaky, function="f", stopping=asyncio.Event())
    delays = [float(str(e["delay_ms"])) for e in _events(caplog)]
    assert delays[0] == 40.0  # the minimum
    assert 40 + 0.8 * 40 <= delays[1] <= 40 + 1.2 * 40  # minimum + minimum, +-20 %
    assert delays[2] == 100.0  # capped at the maximum
    gaps = [later - earlier for earlier, later in zip(flaky.times, flaky.times[1:], strict=False)]
    assert all(gap >= delay / 1000 - 0.005 for gap, delay in zip(gaps, delays, strict=True))


async def test_stopping_ends_indefinite_retries_at_once(caplog: pytest.LogCaptureFixture) -> None:
    flaky = FlakyFunction(failures=10**9)
    stopping = asyncio.Event()
    policy = RetryPolicy(FIXED_DELAY, -1, delay_s=30.0)
    with caplog.at_level(logging.INFO, logger="devhost.retry"):
        run = asyncio.create_task(run_with_retries(policy, flaky, function="f", stopping=stopping))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        stopping.set()
        outcome = await asyncio.wait_for(run, 5)
    assert outcome is RetryOutcome.STOPPED
    assert time.monotonic() - started < 2  # the wait was 30 s or more
    assert len(flaky.attempts) == 1
    assert _events(caplog)[-1]["event"] == "retries_stopped"


async def test_a_stopping_host_runs_no_further_retry() -> None:
    stopping = asyncio.Event()
    stopping.set()
    flaky = FlakyFunction(failures=1)
    outcome = await run_with_retries(
        RetryPolicy(FIXED_DELAY, -1, delay_s=0.0), flaky, function="f", stopping=stopping
    )
    assert outcome is RetryOutcome.STOPPED and len(flaky.attempts) == 1


async def test_the_invoker_fills_context_retry_context(invoker: Invoker) -> None:
    seen: list[tuple[int, int, str, str]] = []
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
    def tick(timer: func.TimerRequest, context: func.Context) -> None:
        retry = context.retry_context
        seen.append(
            (
                retry.retry_count,
                retry.max_retry_count,
                retry.exception.message,
                retry.exception.stack_trace,
            )
        )

    [function] = index_app(app, AppSettings({}, environ={}))
    await invoker.invoke(function, None)
    try:
        raise ValueError("bad input")
    except ValueError as error:
        await invoker.invoke(function, None, retry_count=2, max_retry_count=4, retry_error=error)
    assert seen[0] == (0, 0, "", "")
    assert seen[1][:3] == (2, 4, "ValueError: bad input")
    assert "Traceback" in seen[1][3] and "bad input" in seen[1][3]
