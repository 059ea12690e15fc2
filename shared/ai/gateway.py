"""The AI gateway: an app's chat and embeddings requests, admitted against its limits, sent to
the LLM port, metered exactly, and answered in OpenAI's shapes.

For each request, in order: the capability must be configured (503 naming the settings, before
anything is counted); the prompt is counted with tiktoken and the prompt plus the capped
`max_tokens` reserved atomically (`Limiter.reserve`: 429 over a rate, 403 over the quota); the
upstream is called with the capped `max_tokens`; the reservation is settled to the upstream's
usage and one ledger entry kept. Streamed, the gateway always asks for the usage chunk and
passes it on only when the app asked for it, so the ledger has the upstream's own count.

Settling and the ledger entry are written after the answer has gone (`pending` tracks them, and
`drain` waits for them): they never add to an app's latency. A stream that the app leaves is
settled to the prompt plus the tokens of the text it received, the upstream's usage being lost
with the connection. Everything blocking (the document store) runs on a worker thread.
"""

from __future__ import annotations

import array
import asyncio
import base64
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.ai.admission import Refusal, Reservation
from shared.ai.apps import App, AppRegistry
from shared.ai.errors import (
    AiNotConfigured,
    ContentFiltered,
    LlmError,
    NoDeploymentAvailable,
    UnknownModel,
    UpstreamRejected,
)
from shared.ai.gateway_calls import ChatCall, EmbeddingsCall
from shared.ai.ledger import Outcome, UsageEntry, UsageLedger
from shared.ai.limits import Limiter
from shared.ai.port import ChatStream, Llm, Usage
from shared.ai.settings import AiSettings, Capability
from shared.ai.sse import DONE, KEEP_ALIVE, KeepAlive, event, with_keep_alive
from shared.ai.tokens import count_text

log = logging.getLogger(__name__)

DEFAULT_KEEP_ALIVE_S = 15.0


@dataclass(frozen=True)
class Answer:
    """A whole answer: a status, a JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamAnswer:
    """A stream's answer: headers, then SSE bytes as they come."""

    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


def error_body(
    message: str, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class _Metered:
    """One request on its way through: what the ledger will say about it."""

    app: App
    request_id: str
    started: float  # monotonic, when the request arrived
    at: float  # epoch seconds, when it arrived
    stream: bool
    model: str | None
    admitted: float | None = None
    first_byte: float | None = None
    deployment: str | None = None
    served_model: str | None = None


class AiGateway:
    """One per process. `llm` builds the port on first use (it holds the SDK's clients)."""

    def __init__(
        self,
        settings: AiSettings,
        apps: AppRegistry,
        limiter: Limiter,
        ledger: UsageLedger,
        llm: Callable[[], Llm],
        *,
        keep_alive_s: float = DEFAULT_KEEP_ALIVE_S,
    ) -> None:
        self.settings = settings
        self.apps = apps
        self.limiter = limiter
        self.ledger = ledger
        self._make_llm = llm
        self._llm: Llm | None = None
        self.keep_alive_s = keep_alive_s
        self.pending: set[asyncio.Task[None]] = set()

    @property
    def llm(self) -> Llm:
        if self._llm is None:
            self._llm = self._make_llm()
        return self._llm

    def begin(self, app: App, stream: bool, model: str | None) -> _Metered:
        return _Metered(app, new_request_id(), time.monotonic(), time.time(), stream, model)

    async def chat(self, call: ChatCall, metered: _Metered) -> Answer | StreamAnswer:
        missing = self.settings.missing(Capability.CHAT)
        if missing is not None:
            return self._refused(metered, 503, error_body(missing, "service_unavailable"))
        admitted = await self._reserve(metered, call.prompt_tokens, call.max_tokens)
        if isinstance(admitted, Answer):
            return admitted
        body = call.upstream_body(admitted.max_tokens)
        try:
            if call.stream:
                upstream = await self.llm.chat(body, stream=True)
            else:
                result = await self.llm.chat(body, stream=False)
        except LlmError as error:
            return self._failed(metered, admitted, error)
        metered.first_byte = time.monotonic()
        if call.stream:
            metered.deployment, metered.served_model = upstream.deployment, upstream.model
            headers = {
                **_stream_headers(),
                **admitted.remaining.headers(),
                "x-request-id": metered.request_id,
            }
            return StreamAnswer(headers, self._events(upstream, call, metered, admitted))
        metered.deployment, metered.served_model = result.deployment, result.model
        usage = result.usage or _reserved(admitted)
        self._settle(metered, admitted, "ok", usage)
        return Answer(200, result.body, self._headers(metered, admitted, usage))

    async def embeddings(self, call: EmbeddingsCall, metered: _Metered) -> Answer:
        missing = self.settings.missing(Capability.EMBEDDINGS)
        if missing is not None:
            return self._refused(metered, 503, error_body(missing, "service_unavailable"))
        admitted = await self._reserve(metered, call.prompt_tokens, 0)
        if isinstance(admitted, Answer):
            return admitted
        try:
            result = await self.llm.embeddings(
                call.inputs, model=call.model, dimensions=call.dimensions
            )
        except LlmError as error:
            return self._failed(metered, admitted, error)
        metered.first_byte = time.monotonic()
        metered.deployment, metered.served_model = result.deployment, result.model
        usage = result.usage or _reserved(admitted)
        self._settle(metered, admitted, "ok", usage)
        body = {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": _base64(vector) if call.base64 else vector,
                }
                for i, vector in enumerate(result.vectors)
            ],
            "model": result.model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
        }
        return Answer(200, body, self._headers(metered, admitted, usage))

    async def drain(self) -> None:
        """Wait for every settlement and ledger entry under way."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    # Admission

    async def _reserve(
        self, metered: _Metered, prompt_tokens: int, max_tokens: int | None
    ) -> Reservation | Answer:
        found = await asyncio.to_thread(
            self.limiter.reserve, metered.app, prompt_tokens, max_tokens
        )
        metered.admitted = time.monotonic()
        if isinstance(found, Refusal):
            return self._over_limit(metered, found)
        return found

    def _over_limit(self, metered: _Metered, refusal: Refusal) -> Answer:
        outcome: Outcome
        if refusal.status == 403:
            kind, outcome = "insufficient_quota", "quota_exceeded"
        elif refusal.retryable:
            kind, outcome = "rate_limit_exceeded", "rate_limited"
        else:
            kind, outcome = "request_too_large", "rejected"
        body = error_body(refusal.message, kind, code=kind)
        self._record(metered, outcome, None)
        return Answer(refusal.status, body, refusal.headers())

    def _refused(self, metered: _Metered, status: int, body: dict[str, Any]) -> Answer:
        self._record(metered, "unavailable" if status == 503 else "rejected", None)
        return Answer(status, body, {"x-request-id": metered.request_id})

    # Upstream outcomes

    def _failed(self, metered: _Metered, reservation: Reservation, error: LlmError) -> Answer:
        outcome, body, headers = _upstream_failure(error)
        self._settle(metered, reservation, outcome, Usage(0, 0, 0))
        headers.update(reservation.remaining.headers())
        headers["x-request-id"] = metered.request_id
        return Answer(error.status, body, headers)

    async def _events(
        self, upstream: ChatStream, call: ChatCall, metered: _Metered, reservation: Reservation
    ) -> AsyncIterator[bytes]:
        outcome: Outcome = "cancelled"
        delivered: list[str] = []
        try:
            async for item in with_keep_alive(aiter(upstream), self.keep_alive_s):
                if isinstance(item, KeepAlive):
                    yield KEEP_ALIVE
                    continue
                chunk = item
                if chunk.usage_only and not call.include_usage:
                    continue
                data = chunk.data
                if not call.include_usage and "usage" in data:
                    data = {k: v for k, v in data.items() if k != "usage"}
                delivered.extend(_texts(data))
                yield event(data)
            outcome = "ok"
            yield DONE
        except LlmError as error:
            outcome = "upstream_error"
            yield event(error_body(str(error), "server_error", code="stream_interrupted"))
        finally:
            await upstream.aclose()
            usage = upstream.usage
            if usage is None:  # the app left (or the upstream broke) before the usage chunk
                completion = sum(count_text(text) for text in delivered)
                prompt = reservation.prompt_tokens
                usage = Usage(prompt, completion, prompt + completion)
            self._settle(metered, reservation, outcome, usage)

    # Metering

    def _settle(
        self,
        metered: _Metered,
        reservation: Reservation,
        outcome: Outcome,
        usage: Usage,
    ) -> None:
        ended = time.monotonic()

        def write() -> None:
            try:
                self.limiter.settle(reservation, min(usage.total_tokens, 2**31 - 1))
            finally:
                self.ledger.record(_entry(metered, outcome, usage, ended))

        self._later(write)

    def _record(self, metered: _Metered, outcome: Outcome, usage: Usage | None) -> None:
        ended = time.monotonic()
        self._later(lambda: self.ledger.record(_entry(metered, outcome, usage, ended)))

    def _later(self, write: Callable[[], Any]) -> None:
        task = asyncio.get_running_loop().create_task(_run_logged(write))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def _headers(self, metered: _Metered, reservation: Reservation, usage: Usage) -> dict[str, str]:
        remaining = reservation.remaining
        returned = reservation.tokens - usage.total_tokens
        headers = {
            "x-ratelimit-remaining-tokens": str(max(0, remaining.tokens + max(0, returned))),
            "x-ratelimit-remaining-requests": str(remaining.requests),
            "x-request-id": metered.request_id,
        }
        if metered.deployment:
            headers["x-gateway-deployment"] = metered.deployment
        return headers


def _base64(vector: list[float]) -> str:
    """A vector as OpenAI sends it with `encoding_format: base64`: little-endian float32."""
    packed = array.array("f", vector)
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def new_request_id() -> str:
    return "req-" + uuid.uuid4().hex


def _upstream_failure(error: LlmError) -> tuple[Outcome, dict[str, Any], dict[str, str]]:
    if isinstance(error, ContentFiltered):
        return "content_filtered", error.body, {"x-should-retry": "false"}
    if isinstance(error, NoDeploymentAvailable):
        body = error_body(str(error), "rate_limit_exceeded", code="upstream_busy")
        retry_ms = str(max(1000, int(error.retry_after_s * 1000)))
        return "unavailable", body, {"retry-after": error.retry_after, "retry-after-ms": retry_ms}
    if isinstance(error, UnknownModel):
        return (
            "rejected",
            error_body(str(error), "invalid_request_error", "model_not_found", "model"),
            {},
        )
    if isinstance(error, UpstreamRejected) and error.status < 500:
        return "rejected", error.body or error_body(str(error), "invalid_request_error"), {}
    if isinstance(error, AiNotConfigured):
        return "unavailable", error_body(str(error), "service_unavailable"), {}
    return "upstream_error", error_body(str(error), "server_error", code="upstream_error"), {}


def _texts(data: dict[str, Any]) -> list[str]:
    """The text a chunk carries (its deltas' content and tool arguments)."""
    texts = []
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        content = delta.get("content")
        if isinstance(content, str):
            texts.append(content)
        for call in delta.get("tool_calls") or ():
            arguments = (
                (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
            )
            if isinstance(arguments, str):
                texts.append(arguments)
    return texts


def _reserved(reservation: Reservation) -> Usage:
    """An answer without usage counts as what was reserved (it never undercounts)."""
    return Usage(reservation.prompt_tokens, reservation.max_tokens, reservation.tokens)


def _entry(metered: _Metered, outcome: Outcome, usage: Usage | None, ended: float) -> UsageEntry:
    admitted = metered.admitted or ended
    first_byte = metered.first_byte
    prompt = min(usage.prompt_tokens, 1_000_000_000) if usage else 0
    completion = min(usage.completion_tokens, 1_000_000_000) if usage else 0
    return UsageEntry(
        request_id=metered.request_id,
        app=metered.app.id,
        outcome=outcome,
        deployment=metered.deployment,
        model=metered.served_model or metered.model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_queue_ms=_ms(admitted - metered.started),
        latency_first_byte_ms=None if first_byte is None else _ms(first_byte - metered.started),
        latency_total_ms=_ms(ended - metered.started),
        stream=metered.stream,
        at=metered.at,
    )


def _ms(seconds: float) -> float:
    return min(max(0.0, seconds * 1000.0), 24 * 3600 * 1000.0)


async def _run_logged(write: Callable[[], Any]) -> None:
    try:
        await asyncio.to_thread(write)
    except Exception:  # a lost entry must never break the answer that has gone
        log.exception("the gateway could not settle or record a request")


def _stream_headers() -> dict[str, str]:
    return {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }
