"""The usage ledger: one document per gateway request, and the sums the usage route answers.

Documents live in `USAGE_CONTAINER`, partitioned by app, with the request id as id (recording
a request twice keeps the first: a retried write is safe). Each holds the app, deployment and
model, the prompt, cached prompt and completion tokens, the cost (`shared.ai.prices`), the
latencies (queued before the upstream was called, to the upstream's first byte, in total), the
outcome and whether it streamed. Never any text of a prompt or a completion: an entry has no
field that could hold one, and its names (model, deployment) are checked against the shape of
a name, so nothing free-form is kept.

The container has no TTL: retention belongs to the governance issue.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from shared.ai.prices import PRICES, Price, cost_usd
from shared.documents.port import (
    Condition,
    ContainerSpec,
    DocumentConflict,
    DocumentContainer,
    Json,
    Query,
)

USAGE_CONTAINER = ContainerSpec("ai_usage", "/app")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
Outcome = Literal[
    "ok",
    "rate_limited",
    "quota_exceeded",
    "rejected",  # by the gateway (a bad request, a request too large) or the upstream (4xx)
    "content_filtered",
    "upstream_error",
    "unavailable",  # no deployment could take it
    "cancelled",  # the app went away mid-stream
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
MAX_TOKENS = 1_000_000_000
MAX_LATENCY_MS = 24 * 3600 * 1000.0
PAGE_SIZE = 1000
MAX_EPOCH = 32_503_680_000  # 3000-01-01
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}")  # a model or deployment
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # a request or app id


class InvalidUsage(ValueError):
    """An entry or a query the ledger refuses; the message names the field."""


@dataclass(frozen=True)
class UsageEntry:
    """One request as metered. `deployment` is None when none was reached (refused first),
    `model` None when the request named none worth keeping; `at` is when the request arrived
    (epoch seconds; None: when it is recorded)."""

    request_id: str
    app: str
    outcome: Outcome
    deployment: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    latency_queue_ms: float = 0.0
    latency_first_byte_ms: float | None = None
    latency_total_ms: float = 0.0
    stream: bool = False
    at: float | None = None

    def __post_init__(self) -> None:
        for name, rule in (("request_id", _ID), ("app", _ID)):
            _check_name(name, getattr(self, name), rule, required=True)
        for name in ("deployment", "model"):
            _check_name(name, getattr(self, name), MODEL_NAME, required=False)
        if self.outcome not in OUTCOMES:
            raise InvalidUsage(f"outcome is one of {', '.join(OUTCOMES)}")
        for name in ("prompt_tokens", "completion_tokens", "cached_prompt_tokens"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= MAX_TOKENS
            ):
                raise InvalidUsage(f"{name} is an integer from 0 to {MAX_TOKENS}")
        if self.cached_prompt_tokens > self.prompt_tokens:
            raise InvalidUsage("cached_prompt_tokens cannot exceed prompt_tokens")
        for name in ("latency_queue_ms", "latency_first_byte_ms", "latency_total_ms"):
            value = getattr(self, name)
            if value is None and name == "latency_first_byte_ms":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidUsage(f"{name} is a number of milliseconds")
            if not (math.isfinite(value) and 0 <= value <= MAX_LATENCY_MS):
                raise InvalidUsage(f"{name} is from 0 to {MAX_LATENCY_MS:.0f} ms")
        if not isinstance(self.stream, bool):
            raise InvalidUsage("stream is true or false")
        at = self.at
        if at is not None and (
            isinstance(at, bool) or not isinstance(at, int | float) or not 0 <= at < MAX_EPOCH
        ):
            raise InvalidUsage("at is epoch seconds, from 1970 to 2999")


@dataclass(frozen=True)
class UsageTotals:
    """Sums over the ledger's entries: `cost_usd` over the priced ones, `unpriced_requests`
    the requests that used tokens of a model without a price."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_requests: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Json]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "unpriced_requests": self.unpriced_requests,
            "by_outcome": dict(self.by_outcome),
        }


class UsageLedger:
    """The ledger on a document container (`USAGE_CONTAINER`)."""

    def __init__(
        self,
        container: DocumentContainer,
        clock: Callable[[], float] = time.time,
        prices: dict[str, Price] = PRICES,
    ) -> None:
        self.container = container
        self._clock = clock
        self._prices = prices

    def record(self, entry: UsageEntry) -> dict[str, Json]:
        """Keep one request's entry (the first, if it was recorded before); the document."""
        if not isinstance(entry, UsageEntry):
            raise InvalidUsage("the ledger records UsageEntry values")
        document = self._document(entry)
        try:
            return self.container.create(document)
        except DocumentConflict:
            return self.container.read(entry.request_id, entry.app)

    def summary(
        self,
        app: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> UsageTotals:
        """The sums over the entries of one app (None: every app) that arrived in [since,
        until) (None: unbounded). One partition's query for an app, paged; like any query on
        the store, not a snapshot: entries recorded while it pages may or may not be in it."""
        if app is not None:
            _check_name("app", app, _ID, required=True)
        where = [Condition("/type", "=", "usage")]
        if since is not None:
            where.append(Condition("/at", ">=", _stamp_of(since)))
        if until is not None:
            where.append(Condition("/at", "<", _stamp_of(until)))
        query = Query(
            where=where,
            partition_key=app,
            cross_partition=app is None,
            page_size=PAGE_SIZE,
        )
        sums = _Sums()
        continuation: str | None = None
        while True:
            page = self.container.query(query, continuation)
            for document in page.documents:
                sums.add(document)
            if page.continuation is None:
                return sums.totals()
            continuation = page.continuation

    def _document(self, entry: UsageEntry) -> dict[str, Json]:
        tokens = entry.prompt_tokens + entry.completion_tokens
        cost: float | None = 0.0
        if tokens:
            model = entry.model or ""
            cost = cost_usd(
                model,
                entry.prompt_tokens,
                entry.completion_tokens,
                entry.cached_prompt_tokens,
                self._prices,
            )
        at = self._clock() if entry.at is None else entry.at
        return {
            "id": entry.request_id,
            "app": entry.app,
            "type": "usage",
            "at": _stamp_of(dt.datetime.fromtimestamp(at, dt.UTC)),
            "deployment": entry.deployment,
            "model": entry.model,
            "prompt_tokens": entry.prompt_tokens,
            "cached_prompt_tokens": entry.cached_prompt_tokens,
            "completion_tokens": entry.completion_tokens,
            "total_tokens": tokens,
            "cost_usd": cost,
            "latency_queue_ms": round(float(entry.latency_queue_ms), 3),
            "latency_first_byte_ms": (
                None
                if entry.latency_first_byte_ms is None
                else round(float(entry.latency_first_byte_ms), 3)
            ),
            "latency_total_ms": round(float(entry.latency_total_ms), 3),
            "outcome": entry.outcome,
            "stream": entry.stream,
        }


class _Sums:
    def __init__(self) -> None:
        self.requests = self.prompt = self.completion = self.unpriced = 0
        self.cost = 0.0
        self.outcomes: dict[str, int] = {}

    def add(self, document: dict[str, Any]) -> None:
        self.requests += 1
        self.prompt += _count(document.get("prompt_tokens"))
        self.completion += _count(document.get("completion_tokens"))
        cost = document.get("cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.cost += cost
        else:
            self.unpriced += 1
        outcome = str(document.get("outcome"))
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def totals(self) -> UsageTotals:
        return UsageTotals(
            self.requests,
            self.prompt,
            self.completion,
            self.prompt + self.completion,
            round(self.cost, 10),
            self.unpriced,
            dict(sorted(self.outcomes.items())),
        )


def _stamp_of(moment: dt.datetime) -> str:
    """A time as the ledger keeps it: UTC with microseconds, so that text order is time's."""
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise InvalidUsage("times need a time zone (UTC)")
    return moment.astimezone(dt.UTC).strftime(TIME_FORMAT)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _check_name(name: str, value: Any, rule: re.Pattern[str], *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not rule.fullmatch(value):
        raise InvalidUsage(f"{name} must match {rule.pattern}")
