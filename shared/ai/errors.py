"""The LLM port's errors, each with the HTTP status the AI routes answer it with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class LlmError(Exception):
    """Base of the port's errors; `status` is the HTTP status to answer the app with."""

    status: int = 502


class AiNotConfigured(LlmError):
    """The capability has no endpoint or model set; the message names the settings to set."""

    status = 503


class UnknownModel(LlmError):
    """The request names a model that no deployment serves."""

    status = 404

    def __init__(self, model: str, available: tuple[str, ...]) -> None:
        served = ", ".join(available) or "none"
        super().__init__(f"no deployment serves model {model[:128]!r}; models served: {served}")
        self.model = model
        self.available = available


class InvalidRequest(LlmError):
    """The app's request is malformed where the port reads it (its `model`)."""

    status = 400


class ContentFiltered(LlmError):
    """The upstream's content filter refused the request (Azure OpenAI's 400 `content_filter`).
    It is the request's doing: never retried, never sent to another deployment. `body` is the
    upstream's error body, `{"error": {..., "innererror": {...}}}`, for the app to see."""

    status = 400

    def __init__(self, deployment: str, body: dict[str, Any]) -> None:
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(str(message or "the request was refused by the content filter"))
        self.deployment = deployment
        self.body = body

    @property
    def innererror(self) -> dict[str, Any] | None:
        """Azure's `innererror` (`code` ResponsibleAIPolicyViolation, `content_filter_result`)."""
        error = self.body.get("error")
        inner = error.get("innererror") if isinstance(error, dict) else None
        return inner if isinstance(inner, dict) else None


class UpstreamRejected(LlmError):
    """The upstream refused the request (a 4xx other than 408 and 429): the same request would
    fail anywhere, so it is not retried. `status` is the upstream's, except that its 401, 403
    and 404 are the platform's own credentials or deployment names at fault, a 502 to the app
    (never a 401 that would blame the app's credentials); `upstream_status` keeps the original."""

    def __init__(self, deployment: str, status: int, body: dict[str, Any]) -> None:
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(f"the upstream refused the request ({status}): {message or 'no reason'}")
        self.upstream_status = status
        self.status = 502 if status in (401, 403, 404) else status
        self.deployment = deployment
        self.body = body


@dataclass(frozen=True)
class Attempt:
    """What became of one deployment while a request looked for one."""

    deployment: str
    outcome: str


class NoDeploymentAvailable(LlmError):
    """Every deployment of the model is benched or just failed. `retry_after_s` is when the
    first one may be tried again, for a 429 with `Retry-After` to the app."""

    status = 429

    def __init__(self, model: str, retry_after_s: float, attempts: tuple[Attempt, ...]) -> None:
        tried = "; ".join(f"{a.deployment}: {a.outcome}" for a in attempts)
        super().__init__(
            f"no deployment of model {model!r} is available ({tried}); "
            f"retry in {math.ceil(retry_after_s)} s"
        )
        self.model = model
        self.retry_after_s = retry_after_s
        self.attempts = attempts

    @property
    def retry_after(self) -> str:
        """The `Retry-After` header's value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


class StreamInterrupted(LlmError):
    """A stream failed after chunks went to the caller: it cannot be retried, so the caller ends
    its own stream with an error event. `chunks` is how many the caller got."""

    def __init__(self, deployment: str, chunks: int, reason: str) -> None:
        super().__init__(f"the stream from {deployment} broke after {chunks} chunks: {reason}")
        self.deployment = deployment
        self.chunks = chunks
        self.reason = reason
