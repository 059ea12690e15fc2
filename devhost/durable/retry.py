"""Retry policies of `call_*_with_retry`, computed as the Durable Task Framework does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RetryOptionsError(ValueError):
    """The retryOptions of an action are missing or invalid."""


@dataclass(frozen=True)
class DurableRetryOptions:
    """`retryOptions`: first interval, attempts, backoff, max interval and timeout (ms)."""

    first_interval_ms: float
    max_attempts: int
    backoff_coefficient: float = 1.0
    max_interval_ms: float | None = None
    timeout_ms: float | None = None

    @classmethod
    def from_json(cls, document: Any) -> DurableRetryOptions:
        if not isinstance(document, dict):
            raise RetryOptionsError("retryOptions must be an object")
        try:
            first = float(document["firstRetryIntervalInMilliseconds"])
            attempts = int(document["maxNumberOfAttempts"])
            backoff = float(document.get("backoffCoefficient", 1.0))
            max_interval = document.get("maxRetryIntervalInMilliseconds")
            timeout = document.get("retryTimeoutInMilliseconds")
            policy = cls(
                first_interval_ms=first,
                max_attempts=attempts,
                backoff_coefficient=backoff,
                max_interval_ms=float(max_interval) if max_interval is not None else None,
                timeout_ms=float(timeout) if timeout is not None else None,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RetryOptionsError(f"invalid retryOptions {document!r}: {error!r}") from error
        if policy.first_interval_ms <= 0:
            raise RetryOptionsError("firstRetryIntervalInMilliseconds must be greater than 0")
        if policy.backoff_coefficient <= 0:
            raise RetryOptionsError("backoffCoefficient must be greater than 0")
        return policy

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "firstRetryIntervalInMilliseconds": self.first_interval_ms,
            "maxNumberOfAttempts": self.max_attempts,
            "backoffCoefficient": self.backoff_coefficient,
        }
        if self.max_interval_ms is not None:
            document["maxRetryIntervalInMilliseconds"] = self.max_interval_ms
        if self.timeout_ms is not None:
            document["retryTimeoutInMilliseconds"] = self.timeout_ms
        return document

    def delay_ms(self, failed_attempts: int) -> float:
        """The wait after the given number of failed attempts (1 after the first failure)."""
        delay = self.first_interval_ms * self.backoff_coefficient ** (failed_attempts - 1)
        if self.max_interval_ms is not None:
            delay = min(delay, self.max_interval_ms)
        return delay

    def timed_out(self, elapsed_ms: float) -> bool:
        return self.timeout_ms is not None and elapsed_ms >= self.timeout_ms
