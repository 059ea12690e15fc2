"""What the limiter answers: a reservation, or a refusal naming the limit, with the headers the
gateway sends (`x-ratelimit-remaining-*` on every answer; `retry-after` and `retry-after-ms`
over a rate, `x-should-retry: false` over the quota or for a request that can never fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Limit(StrEnum):
    """The limit a refusal is for."""

    TOKENS = "tokens_per_minute"
    REQUESTS = "requests_per_minute"
    QUOTA = "token_quota"
    REQUEST_SIZE = "request_size"  # larger than the minute or the quota: it never fits


class InvalidReservation(ValueError):
    """Token counts that are not counts (negative, not integers, absurdly large)."""


class AlreadySettled(RuntimeError):
    """A reservation is settled once."""


@dataclass(frozen=True)
class Remaining:
    """What the app has left: tokens and requests in the current minute, tokens in the period."""

    tokens: int
    requests: int
    quota: int

    def headers(self) -> dict[str, str]:
        """The headers every answer carries."""
        return {
            "x-ratelimit-remaining-tokens": str(self.tokens),
            "x-ratelimit-remaining-requests": str(self.requests),
        }


@dataclass
class Reservation:
    """An admitted request: `tokens` reserved (`prompt_tokens` + `max_tokens`), `max_tokens`
    the capped value to ask the upstream for, `at` the time it was admitted at (epoch
    seconds). Settle it once (`Limiter.settle`)."""

    app_id: str
    tokens: int
    prompt_tokens: int
    max_tokens: int
    slot: int
    period: str
    at: float
    remaining: Remaining
    settled: bool = field(default=False, init=False)


@dataclass(frozen=True)
class Refusal:
    """A refused request: which limit, when to retry (None: not before the quota period ends,
    or never, for a request too large), what is left, and a message for the caller."""

    limit: Limit
    retry_after_ms: int | None
    remaining: Remaining
    message: str

    @property
    def retryable(self) -> bool:
        return self.retry_after_ms is not None

    @property
    def status(self) -> int:
        """403 over the quota; 429 otherwise (as OpenAI answers a request too large, too)."""
        return 403 if self.limit is Limit.QUOTA else 429

    def headers(self) -> dict[str, str]:
        headers = self.remaining.headers()
        if self.retry_after_ms is None:
            headers["x-should-retry"] = "false"
        else:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after_ms / 1000)))
            headers["retry-after-ms"] = str(self.retry_after_ms)
        return headers
