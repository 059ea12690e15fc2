"""What an openai SDK error means for the pool: a 429 with its Retry-After, a fault, a content
filter, or another refusal of the request. Imports the SDK only when an error is classified,
by which time a client has loaded it."""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from shared.ai.errors import ContentFiltered, UpstreamRejected
from shared.ai.pool import Outcome, Verdict
from shared.ai.settings import Deployment


class UpstreamEmpty(Exception):
    """A stream ended before its first chunk: as good as a broken connection."""


class UpstreamMalformed(Exception):
    """The upstream answered 200 with a body that is not a completion: a fault of the
    deployment, tried elsewhere like a 5xx."""


def retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a 429's headers: Azure's `retry-after-ms`, else `Retry-After` in
    seconds or as an HTTP date. None when absent or unreadable."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(lowered.get(name, "")) * scale
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return value
    date = lowered.get("retry-after", "")
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now())


def error_body(body: object) -> dict[str, Any]:
    """The upstream's error as the app would have seen it: `{"error": {...}}`. (The SDK keeps
    only the inner object in `APIStatusError.body`.)"""
    if isinstance(body, dict):
        return {"error": body}
    return {"error": {"message": str(body)[:1000] if body is not None else None}}


def is_content_filter(body: Mapping[str, Any]) -> bool:
    error = body.get("error")
    if not isinstance(error, dict):
        return False
    inner = error.get("innererror")
    inner_code = inner.get("code") if isinstance(inner, dict) else None
    return error.get("code") == "content_filter" or inner_code == "ResponsibleAIPolicyViolation"


def classify(error: Exception, deployment: Deployment) -> Outcome | None:
    """The pool's reading of an SDK error; None for anything that is not the upstream's."""
    import openai

    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status == 429:
            headers = error.response.headers
            return Outcome(Verdict.THROTTLED, "429", retry_after_s=retry_after(headers))
        if status == 408 or status >= 500:
            return Outcome(Verdict.FAULT, f"HTTP {status}")
        body = error_body(error.body)
        if status == 400 and is_content_filter(body):
            filtered = ContentFiltered(deployment.name, body)
            return Outcome(Verdict.REFUSED, "content filter", error=filtered)
        return Outcome(
            Verdict.REFUSED,
            f"HTTP {status}",
            error=UpstreamRejected(deployment.name, status, body),
        )
    if isinstance(error, openai.APITimeoutError):
        return Outcome(Verdict.FAULT, "timed out")
    if isinstance(error, openai.APIConnectionError):
        return Outcome(Verdict.FAULT, "connection failed")
    if isinstance(error, openai.APIError):  # an error event in place of the first chunk
        return Outcome(Verdict.FAULT, "upstream error")
    if isinstance(error, UpstreamEmpty):
        return Outcome(Verdict.FAULT, "empty stream")
    if isinstance(error, UpstreamMalformed):
        return Outcome(Verdict.FAULT, "malformed answer")
    return None


def describe(error: BaseException) -> str:
    """A short reason for a broken stream, with no body or prompt in it."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return "timed out waiting for the next chunk"
    if isinstance(error, openai.APIConnectionError):
        return "the connection broke"
    if isinstance(error, openai.APIError):
        return f"the upstream sent an error: {error.message[:200]}"
    return type(error).__name__
