"""Retry policies: read from `@app.retry` as the worker reads them, and their delay schedules."""

from __future__ import annotations

import itertools
import logging
import random
import re
from typing import Any

import azure.functions as func
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devhost.appsettings import AppSettings
from devhost.indexing import FunctionSpec, IndexingError, index_app
from devhost.retry import (
    EXPONENTIAL_BACKOFF,
    FIXED_DELAY,
    RetryPolicy,
    RetryPolicyError,
    parse_interval,
    parse_retry_policy,
)

pytestmark = pytest.mark.unit

# What `time.strptime(value, "%H:%M:%S")` matches, written out independently.
WORKER_INTERVAL = re.compile(r"(2[0-3]|[0-1]\d|\d):([0-5]\d|\d):(6[0-1]|[0-5]\d|\d)")


def _timer(**retry: Any) -> FunctionSpec:
    app = func.FunctionApp()

    @app.function_name("tick")
    @app.retry(**retry)
    @app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
    def tick(timer: func.TimerRequest) -> None:
        return None

    [function] = index_app(app, AppSettings({}, environ={}))
    return function


def test_the_decorator_s_policies_reach_the_function_spec() -> None:
    fixed = _timer(strategy="fixed_delay", max_retry_count="3", delay_interval="00:00:10")
    assert fixed.retry == RetryPolicy(FIXED_DELAY, 3, delay_s=10.0)
    backoff = _timer(
        strategy="exponential_backoff",
        max_retry_count=-1,
        minimum_interval="00:00:01",
        maximum_interval="00:15:00",
    )
    assert backoff.retry == RetryPolicy(EXPONENTIAL_BACKOFF, -1, minimum_s=1.0, maximum_s=900.0)
    assert backoff.retry.indefinite and backoff.retry.allows_retry(10**6)
    assert "retries indefinitely, 00:00:01 to 00:15:00 apart" in backoff.retry.describe()


def test_extra_setting_fields_are_carried_but_ignored() -> None:
    spec = _timer(
        strategy="fixed_delay",
        max_retry_count="1",
        delay_interval="0:0:2",
        setting_extra_fields={"note": "ignored"},
    )
    assert spec.retry == RetryPolicy(FIXED_DELAY, 1, delay_s=2.0)


def test_a_function_without_a_policy_has_none() -> None:
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
    def tick(timer: func.TimerRequest) -> None:
        return None

    assert index_app(app, AppSettings({}, environ={}))[0].retry is None


@pytest.mark.parametrize(
    ("retry", "fragment"),
    [
        ({"strategy": "linear", "max_retry_count": "3"}, "strategy must be"),
        ({"strategy": "fixed_delay", "max_retry_count": "3"}, "delay_interval must be"),
        (
            {"strategy": "fixed_delay", "max_retry_count": "3", "delay_interval": "00:00:00.1"},
            "whole seconds",
        ),
        ({"strategy": "fixed_delay", "max_retry_count": "3", "delay_interval": "5"}, "'5'"),
        (
            {"strategy": "fixed_delay", "max_retry_count": "three", "delay_interval": "00:00:01"},
            "max_retry_count must be a whole number",
        ),
        (
            {"strategy": "fixed_delay", "max_retry_count": "-2", "delay_interval": "00:00:01"},
            "-1 (retry indefinitely) or more",
        ),
        (
            {
                "strategy": "exponential_backoff",
                "max_retry_count": "3",
                "minimum_interval": "00:01:00",
                "maximum_interval": "00:00:10",
            },
            "minimum_interval (00:01:00) must not exceed maximum_interval (00:00:10)",
        ),
        (
            {
                "strategy": "exponential_backoff",
                "max_retry_count": "3",
                "minimum_interval": "0:0:1",
            },
            "maximum_interval must be",
        ),
    ],
)
def test_a_malformed_policy_fails_indexing_naming_the_function(
    retry: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(IndexingError) as raised:
        _timer(**retry)
    message = str(raised.value)
    assert message.startswith("function 'tick': retry policy: ")
    assert fragment in message


def test_a_policy_on_a_trigger_without_retries_is_ignored_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="00:00:01")
    @app.route(route="hello")
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")

    with caplog.at_level(logging.WARNING, logger="devhost.indexing"):
        [function] = index_app(app, AppSettings({}, environ={}))
    assert function.retry is None
    assert "function hello: retry policies apply to timer, Event Hubs" in caplog.text


def test_a_malformed_policy_fails_even_where_it_would_be_ignored() -> None:
    # The worker builds the retry options of every function at indexing.
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.retry(strategy="fixed_delay", max_retry_count="2", delay_interval="soon")
    @app.route(route="hello")
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")

    with pytest.raises(IndexingError, match="function 'hello': retry policy: delay_interval"):
        index_app(app, AppSettings({}, environ={}))


@given(
    hours=st.integers(0, 23),
    minutes=st.integers(0, 59),
    seconds=st.integers(0, 59),
    padded=st.booleans(),
)
def test_intervals_are_whole_seconds_from_hh_mm_ss(
    hours: int, minutes: int, seconds: int, padded: bool
) -> None:
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}" if padded else f"{hours}:{minutes}:{seconds}"
    assert parse_interval(text, "delay_interval") == hours * 3600 + minutes * 60 + seconds


@given(st.text(alphabet="0123456789:.- d", max_size=12))
def test_an_interval_parses_exactly_when_the_worker_would(text: str) -> None:
    match = WORKER_INTERVAL.fullmatch(text)
    if match is None:
        with pytest.raises(RetryPolicyError, match="HH:MM:SS"):
            parse_interval(text, "delay_interval")
    else:
        hours, minutes, seconds = (int(group) for group in match.groups())
        assert parse_interval(text, "delay_interval") == hours * 3600 + minutes * 60 + seconds


@given(st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.integers())))
def test_an_interval_that_is_not_text_is_refused(value: Any) -> None:
    with pytest.raises(RetryPolicyError, match="delay_interval"):
        parse_interval(value, "delay_interval")


@given(
    count=st.integers(-1, 10**6),
    as_text=st.booleans(),
)
def test_max_retry_count_is_read_as_int_accepts_it(count: int, as_text: bool) -> None:
    setting = {
        "strategy": "fixed_delay",
        "max_retry_count": str(count) if as_text else count,
        "delay_interval": "00:00:01",
    }
    policy = parse_retry_policy(setting)
    assert policy is not None and policy.max_retry_count == count


@given(st.one_of(st.integers(max_value=-2), st.sampled_from(["", "x", "1.5", None, "1e3"])))
def test_a_bad_max_retry_count_is_refused(value: Any) -> None:
    setting = {"strategy": "fixed_delay", "max_retry_count": value, "delay_interval": "00:00:01"}
    with pytest.raises(RetryPolicyError, match="max_retry_count"):
        parse_retry_policy(setting)


def test_fixed_delays_repeat_and_counts_bound_the_retries() -> None:
    policy = RetryPolicy(FIXED_DELAY, 3, delay_s=0.5)
    assert list(itertools.islice(policy.delays(), 5)) == [0.5] * 5
    assert [policy.allows_retry(done) for done in range(5)] == [True, True, True, False, False]
    assert not RetryPolicy(FIXED_DELAY, 0).allows_retry(0)


def test_exponential_backoff_follows_the_webjobs_schedule() -> None:
    policy = RetryPolicy(EXPONENTIAL_BACKOFF, -1, minimum_s=1.0, maximum_s=20.0)
    delays = list(itertools.islice(policy.delays(random.Random(7)), 9))
    assert delays[0] == 1.0
    # Retry n (n >= 2) waits minimum + minimum * 2^(n-2), +-20 %, up to the maximum.
    for n, delay in enumerate(delays[1:4], start=2):
        increment = 2.0 ** (n - 2)
        assert 1 + 0.8 * increment <= delay <= 1 + 1.2 * increment, (n, delay)
    assert 9 < delays[5] < 20 and delays[-2:] == [20.0, 20.0]


@settings(deadline=None)  # pure computation; a loaded CI machine must not fail it
@given(
    minimum=st.one_of(st.just(0.0), st.floats(0.001, 3600)),
    spread=st.floats(0, 86_400),
    seed=st.integers(0, 2**32),
)
def test_backoff_delays_rise_from_the_minimum_to_the_maximum(
    minimum: float, spread: float, seed: int
) -> None:
    maximum = minimum + spread
    policy = RetryPolicy(EXPONENTIAL_BACKOFF, 5, minimum_s=minimum, maximum_s=maximum)
    delays = list(itertools.islice(policy.delays(random.Random(seed)), 60))
    assert all(minimum <= delay <= maximum for delay in delays)
    assert delays == sorted(delays)
    assert delays[0] == minimum
    # A zero minimum retries at once, forever, as the WebJobs strategy does.
    assert delays[-1] == (maximum if minimum > 0 else 0.0)


@settings(deadline=None, max_examples=30)
@given(st.floats(1e-300, 1e-200))
def test_a_minute_minimum_never_overflows(minimum: float) -> None:
    # 2.0 ** 1100 would overflow before the 1e10 maximum is reached.
    policy = RetryPolicy(EXPONENTIAL_BACKOFF, -1, minimum_s=minimum, maximum_s=1e10)
    delays = list(itertools.islice(policy.delays(random.Random(1)), 1200))
    assert all(minimum <= delay <= 1e10 for delay in delays)


def test_a_policy_built_in_code_is_checked_too() -> None:
    with pytest.raises(RetryPolicyError, match="negative"):
        RetryPolicy(FIXED_DELAY, 1, delay_s=-1)
    with pytest.raises(RetryPolicyError, match="unknown retry strategy"):
        RetryPolicy("fixed", 1)
    assert parse_retry_policy(None) is None
