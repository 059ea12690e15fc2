"""Function retry policies (`@app.retry`): parsing, delay schedules, and the retry loop.

The Python worker reads the `retry_policy` setting of each function at indexing and hands the
host `RpcRetryOptions`; the host re-runs a failed execution of a Timer, Event Hubs, Kafka or
Cosmos DB trigger with the same input until it succeeds or `max_retry_count` retries have
failed (-1: indefinitely), and stops retrying when the host shuts down. This module parses the
setting exactly as the worker does, so an app the devhost accepts also indexes in Azure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

log = logging.getLogger("devhost.retry")

RETRY_POLICY_SETTING = "retry_policy"
FIXED_DELAY = "fixed_delay"
EXPONENTIAL_BACKOFF = "exponential_backoff"
STRATEGIES = (FIXED_DELAY, EXPONENTIAL_BACKOFF)
INDEFINITELY = -1
# Trigger types whose extensions support retry policies (lower case); others ignore them.
RETRY_TRIGGERS = frozenset({"timertrigger", "eventhubtrigger", "kafkatrigger", "cosmosdbtrigger"})
# The WebJobs SDK's RandomizedExponentialBackoffStrategy varies each increment by +-20 %.
RANDOMIZATION_FACTOR = 0.2
MAX_EXPONENT = 1000
# The worker parses intervals with time.strptime(value, "%H:%M:%S") into whole seconds.
_INTERVAL_FORMAT = "%H:%M:%S"


class RetryPolicyError(ValueError):
    """A retry policy the worker or the host would refuse; the message says which value."""


@dataclass(frozen=True)
class RetryPolicy:
    """A parsed `@app.retry` policy; intervals in seconds."""

    strategy: str
    max_retry_count: int
    delay_s: float = 0.0
    minimum_s: float = 0.0
    maximum_s: float = 0.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RetryPolicyError(f"unknown retry strategy {self.strategy!r}")
        if self.max_retry_count < INDEFINITELY:
            raise RetryPolicyError(
                f"max_retry_count must be -1 (retry indefinitely) or more, "
                f"not {self.max_retry_count}"
            )
        if min(self.delay_s, self.minimum_s, self.maximum_s) < 0:
            raise RetryPolicyError("retry intervals must not be negative")
        if self.strategy == EXPONENTIAL_BACKOFF and self.minimum_s > self.maximum_s:
            raise RetryPolicyError(
                f"minimum_interval ({_timespan(self.minimum_s)}) must not exceed "
                f"maximum_interval ({_timespan(self.maximum_s)})"
            )

    @property
    def indefinite(self) -> bool:
        return self.max_retry_count == INDEFINITELY

    def allows_retry(self, retries_done: int) -> bool:
        """Whether another retry may follow `retries_done` failed retries."""
        return self.indefinite or retries_done < self.max_retry_count

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The delays before retry 1, 2, ... of one execution (endless; take what you need)."""
        if self.strategy == FIXED_DELAY:
            return _fixed(self.delay_s)
        return _exponential_backoff(self.minimum_s, self.maximum_s, rng or random.Random())

    def describe(self) -> str:
        count = (
            "retries indefinitely" if self.indefinite else f"up to {self.max_retry_count} retries"
        )
        if self.strategy == FIXED_DELAY:
            return f"retry {FIXED_DELAY}: {count}, {_timespan(self.delay_s)} apart"
        return (
            f"retry {EXPONENTIAL_BACKOFF}: {count}, "
            f"{_timespan(self.minimum_s)} to {_timespan(self.maximum_s)} apart"
        )


def _fixed(delay: float) -> Iterator[float]:
    while True:
        yield delay


def _exponential_backoff(minimum: float, maximum: float, rng: random.Random) -> Iterator[float]:
    # As the WebJobs SDK computes it: the first retry waits the minimum, each later one adds
    # minimum * 2^(n-1), randomized by +-20 %, until the maximum is reached and then kept.
    current, exponent = 0.0, 0
    while True:
        if minimum == 0:
            yield 0.0
            continue
        if current != maximum:
            backoff = minimum
            if exponent > 0:
                factor = rng.uniform(1 - RANDOMIZATION_FACTOR, 1 + RANDOMIZATION_FACTOR)
                backoff += factor * 2.0 ** (exponent - 1) * minimum
            if backoff < maximum:
                # Bounded so that 2.0 ** exponent cannot overflow on a minute minimum.
                current, exponent = backoff, min(exponent + 1, MAX_EXPONENT)
            else:
                current = maximum
        yield current


def parse_retry_policy(setting: Mapping[str, Any] | None) -> RetryPolicy | None:
    """The policy in a function's `retry_policy` setting (`get_settings_dict`), or None.

    Values are read as the worker reads them: `max_retry_count` through `int()`, intervals
    as `HH:MM:SS` in whole seconds (hours 0-23); the host then requires a count of -1 or more
    and a minimum interval no greater than the maximum.
    """
    if setting is None:
        return None
    strategy = setting.get("strategy")
    if strategy not in STRATEGIES:
        raise RetryPolicyError(
            f"retry strategy must be {FIXED_DELAY!r} or {EXPONENTIAL_BACKOFF!r}, not {strategy!r}"
        )
    raw_count: Any = setting.get("max_retry_count")
    try:
        count = int(raw_count)
    except (TypeError, ValueError):
        raise RetryPolicyError(
            f"max_retry_count must be a whole number (-1 to retry indefinitely), not {raw_count!r}"
        ) from None
    if strategy == FIXED_DELAY:
        delay = parse_interval(setting.get("delay_interval"), "delay_interval")
        return RetryPolicy(FIXED_DELAY, count, delay_s=delay)
    minimum = parse_interval(setting.get("minimum_interval"), "minimum_interval")
    maximum = parse_interval(setting.get("maximum_interval"), "maximum_interval")
    return RetryPolicy(EXPONENTIAL_BACKOFF, count, minimum_s=minimum, maximum_s=maximum)


def parse_interval(value: Any, name: str) -> float:
    """An interval as the worker reads it: `time.strptime(value, "%H:%M:%S")`, whole seconds."""
    try:
        parsed = time.strptime(value, _INTERVAL_FORMAT)
    except (TypeError, ValueError):
        raise RetryPolicyError(
            f"{name} must be a time span of whole seconds, HH:MM:SS with hours 0-23 "
            f"(e.g. '00:00:05'), as the Python worker parses it; not {value!r}"
        ) from None
    return float(parsed.tm_hour * 3600 + parsed.tm_min * 60 + parsed.tm_sec)


def _timespan(seconds: float) -> str:
    whole, fraction = divmod(seconds, 1)
    hours, rest = divmod(int(whole), 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return text + f"{fraction:.3f}"[1:] if fraction else text


# the retry loop --------------------------------------------------------------------------


class RetryOutcome(Enum):
    """How an execution ended: it succeeded, it failed for good, or the host stopped it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Attempt:
    """What `context.retry_context` holds for one attempt, and the last attempt's error."""

    retry_count: int
    max_retry_count: int
    error: BaseException | None = None


# Runs the function once; returns None on success, or what the function raised.
AttemptRunner = Callable[[Attempt], Awaitable[BaseException | None]]


async def run_with_retries(
    policy: RetryPolicy | None,
    attempt: AttemptRunner,
    *,
    function: str,
    stopping: asyncio.Event,
    log_fields: Mapping[str, Any] | None = None,
    rng: random.Random | None = None,
) -> RetryOutcome:
    """Run `attempt`, then retry it on failure as `policy` says.

    Retries stop when `stopping` is set (the host is shutting down): that returns STOPPED,
    so the caller leaves its input unacknowledged. Without a policy the function runs once
    and the retry context is 0/0, as the host sends none.
    """
    if policy is None:
        error = await attempt(Attempt(0, 0))
        return RetryOutcome.SUCCEEDED if error is None else RetryOutcome.FAILED
    delays = policy.delays(rng)
    retries, error = 0, None
    while True:
        error = await attempt(Attempt(retries, policy.max_retry_count, error))
        if error is None:
            return RetryOutcome.SUCCEEDED
        fields: dict[str, Any] = {"function": function, "max_retry_count": policy.max_retry_count}
        fields.update(log_fields or {})
        if not policy.allows_retry(retries):
            _log(logging.WARNING, "retries_exhausted", fields, retries=retries)
            return RetryOutcome.FAILED
        retries += 1
        delay = next(delays)
        error_text = f"{type(error).__name__}: {error}"
        _log(
            logging.INFO,
            "retry",
            fields,
            retry_count=retries,
            delay_ms=round(delay * 1000, 3),
            error=error_text,
        )
        if await _stopped_within(stopping, delay):
            _log(logging.INFO, "retries_stopped", fields, retry_count=retries)
            return RetryOutcome.STOPPED


async def _stopped_within(stopping: asyncio.Event, delay: float) -> bool:
    if stopping.is_set():
        return True
    try:
        await asyncio.wait_for(stopping.wait(), delay)
    except TimeoutError:
        return False
    return True


def _log(level: int, event: str, fields: Mapping[str, Any], **more: Any) -> None:
    log.log(level, json.dumps({"event": event, **fields, **more}, default=str))
