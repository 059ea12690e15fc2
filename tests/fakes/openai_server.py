"""A loopback OpenAI-compatible server: chat completions (whole or streamed) and embeddings.

It speaks three path shapes: OpenAI's (`/v1/chat/completions`, base URL `{url}/v1`), Azure
OpenAI's v1 API (`/openai/v1/...`) and Azure's deployments API
(`/openai/deployments/{deployment}/...?api-version=...`). Start it with
`with FakeOpenAI() as server:`; it serves from a thread, so the real openai SDK can talk to it.

Each request takes the next reply scripted for its deployment (the Azure path's deployment,
else the body's `model`) with `server.script(deployment, *replies)`, or a default `Completion`
when none is left. Replies: `Completion` (text, chunk delays, a dropped connection or an error
event mid-stream), `RateLimited` (429 with `Retry-After` / `retry-after-ms`), `ServerError`
and `ContentFilter` (Azure's 400 with `innererror`). Every request is recorded in
`server.requests` (headers lower-cased, the JSON body) for tests to check what was sent.

Token counts are words, so usage is exact: prompt tokens are the words of the messages' text
(the inputs', for embeddings), completion tokens the words of the reply.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared.ai.llm import OpenAiLlm
from shared.ai.settings import AiSettings, AzureApi, Backend, Deployment

CREATED = 1_700_000_000
EMBEDDING_DIMENSIONS = 8


@dataclass(frozen=True)
class Completion:
    """A reply, streamed when the request asks for it: a role chunk, content chunks of
    `chunk_words` words `chunk_delay_s` apart, a finish chunk, then the usage chunk (when
    `stream_options.include_usage` is asked, or `usage` forces it either way) and `[DONE]`;
    on Azure's paths, a first chunk of prompt filter results comes before them all.
    `drop_after` drops the connection after that many chunks (0: right after the headers;
    past the last: before `[DONE]`); `error_after` sends an SSE error event there instead."""

    text: str = "Hello from the loopback model"
    chunk_words: int = 1
    first_delay_s: float = 0.0  # before the response starts (headers)
    chunk_delay_s: float = 0.0
    finish_reason: str = "stop"
    drop_after: int | None = None
    error_after: int | None = None
    usage: bool | None = None


@dataclass(frozen=True)
class RateLimited:
    """A 429; `retry_after_s` goes in `Retry-After` (whole seconds), `retry_after_ms` in
    Azure's `retry-after-ms` (either may be left out with None)."""

    retry_after_s: int | None = 1
    retry_after_ms: int | None = None


@dataclass(frozen=True)
class ServerError:
    status: int = 500
    message: str = "The server had an error while processing your request. Sorry about that!"


@dataclass(frozen=True)
class ContentFilter:
    """Azure OpenAI's 400 for a prompt its content filter refused."""

    category: str = "violence"
    severity: str = "high"


Reply = Completion | RateLimited | ServerError | ContentFilter


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    deployment: str
    api: str  # "openai", "azure-v1" or "azure-deployments"
    kind: str  # "chat" or "embeddings"
    at: float = field(default_factory=time.monotonic)


def words(text: str) -> int:
    return len(text.split())


def prompt_tokens(body: Any) -> int:
    """The words of a chat body's messages (text parts only), or of an embeddings input."""
    if not isinstance(body, dict):
        return 0
    if "input" in body:
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return sum(words(item) for item in items if isinstance(item, str))
    total = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += words(content)
        elif isinstance(content, list):
            total += sum(
                words(part.get("text", ""))
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
    return total


def fake_vector(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The server's embedding of `text`: eighths in [-1, 1), exact in float32 (base64)."""
    digest = b"".join(
        hashlib.sha256(f"{index}:{text}".encode()).digest() for index in range(dimensions // 32 + 1)
    )
    return [(byte - 128) / 128 for byte in digest[:dimensions]]


class FakeOpenAI:
    """Start with `with FakeOpenAI() as server:`, then point the SDK at `server.url` (Azure)
    or `server.base_url` (OpenAI-compatible). `api_key` or `token`, when given, is the only
    credential accepted (`api-key` header or `Authorization: Bearer`); any is, otherwise."""

    def __init__(self, *, api_key: str | None = None, token: str | None = None) -> None:
        self.api_key = api_key
        self.token = token
        self.requests: list[Received] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked streams, so a dropped one is detectable
            disable_nagle_algorithm = True  # else each answer waits 40 ms for a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                server._serve(self)

            def do_GET(self) -> None:  # noqa: N802
                _send_json(self, 404, {"error": {"code": "404", "message": "Resource not found"}})

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.base_url = f"{self.url}/v1"
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def deployment(self, name: str, model: str | None = None, *, azure: bool = False) -> Deployment:
        """A deployment served here: at `url` for Azure's paths, `base_url` for OpenAI's."""
        return Deployment(name, model or name, self.url if azure else self.base_url)

    def script(self, deployment: str, *replies: Reply) -> None:
        """Queue replies for `deployment`'s next requests, in order."""
        with self._lock:
            self._scripts.setdefault(deployment, deque()).extend(replies)

    def received(self, deployment: str | None = None, kind: str | None = None) -> list[Received]:
        """The requests received, for one deployment and kind (chat, embeddings) or all."""
        with self._lock:
            return [
                r
                for r in self.requests
                if deployment in (None, r.deployment) and kind in (None, r.kind)
            ]

    def _next_reply(self, deployment: str) -> Reply:
        with self._lock:
            queue = self._scripts.get(deployment)
            return queue.popleft() if queue else Completion()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        try:
            self._answer(handler)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            handler.close_connection = True

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            _send_json(handler, 400, {"error": {"message": "body is not JSON", "code": None}})
            return
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        headers = {key.lower(): value for key, value in handler.headers.items()}
        route = _route(parts.path)
        if route is None:
            _send_json(handler, 404, {"error": {"code": "404", "message": "Resource not found"}})
            return
        api, kind, deployment = route
        if not deployment:  # OpenAI's paths name no deployment: the body's model does
            model = body.get("model") if isinstance(body, dict) else None
            deployment = model if isinstance(model, str) else ""
        with self._lock:
            self.requests.append(
                Received("POST", parts.path, query, headers, body, deployment, api, kind)
            )
        if api == "azure-deployments" and "api-version" not in query:
            _send_json(handler, 404, {"error": {"code": "404", "message": "Resource not found"}})
            return
        if not self._authorized(headers):
            _send_json(
                handler,
                401,
                {"error": {"code": "401", "message": "Access denied due to invalid credentials."}},
            )
            return
        reply = self._next_reply(deployment)
        azure = api != "openai"
        if isinstance(reply, RateLimited):
            _rate_limited(handler, reply, azure)
        elif isinstance(reply, ServerError):
            error = {"message": reply.message, "type": "server_error", "param": None, "code": None}
            _send_json(handler, reply.status, {"error": error})
        elif isinstance(reply, ContentFilter):
            _send_json(handler, 400, _content_filter_body(reply))
        elif kind == "embeddings":
            _send_json(handler, 200, _embeddings(body, deployment))
        else:
            self._complete(handler, reply, body, deployment or "default", azure)

    def _authorized(self, headers: dict[str, str]) -> bool:
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        key = headers.get("api-key", "")
        if not bearer and not key:
            return False
        if self.token is not None and bearer != self.token:
            return False
        return self.api_key is None or self.api_key in (key, bearer)

    def _complete(
        self,
        handler: BaseHTTPRequestHandler,
        reply: Completion,
        body: Any,
        model: str,
        azure: bool,
    ) -> None:
        time.sleep(reply.first_delay_s)
        request = body if isinstance(body, dict) else {}
        ident = f"chatcmpl-loopback-{next(self._ids)}"
        usage = {
            "prompt_tokens": prompt_tokens(request),
            "completion_tokens": words(reply.text),
            "total_tokens": prompt_tokens(request) + words(reply.text),
        }
        if not request.get("stream"):
            message = {"role": "assistant", "content": reply.text, "refusal": None}
            choice = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
            completion = {
                "id": ident,
                "object": "chat.completion",
                "created": CREATED,
                "model": model,
                "system_fingerprint": "fp_loopback",
                "choices": [choice],
                "usage": usage,
            }
            _send_json(handler, 200, completion)
            return
        options = request.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        send_usage = include_usage if reply.usage is None else reply.usage
        _SseWriter(handler, reply, ident, model, azure, usage if send_usage else None).run()


_ROUTES = (
    (
        "azure-deployments",
        r"/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|embeddings)",
    ),
    ("azure-v1", r"/openai/v1/(?P<op>chat/completions|embeddings)"),
    ("openai", r"/v1/(?P<op>chat/completions|embeddings)"),
)


def _route(path: str) -> tuple[str, str, str] | None:
    """(api, kind, deployment) of a path this server speaks; the deployment is "" on paths that
    name none."""
    for api, pattern in _ROUTES:
        match = re.fullmatch(pattern, path)
        if match:
            kind = "chat" if match["op"] == "chat/completions" else "embeddings"
            return api, kind, match.groupdict().get("deployment") or ""
    return None


class _SseWriter:
    """Writes one streamed completion as server-sent events, in HTTP/1.1 chunks."""

    def __init__(
        self,
        handler: BaseHTTPRequestHandler,
        reply: Completion,
        ident: str,
        model: str,
        azure: bool,
        usage: dict[str, int] | None,
    ) -> None:
        self._handler = handler
        self._reply = reply
        self._azure = azure
        self._usage = usage
        self._base: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_loopback",
        }
        if usage is not None:
            self._base["usage"] = None  # every chunk but the last has `usage: null`

    def run(self) -> None:
        handler = self._handler
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            self._events()
        except (BrokenPipeError, ConnectionResetError):  # the client went away
            handler.close_connection = True

    def _events(self) -> None:
        reply = self._reply
        for index, (delay, event) in enumerate(self._plan()):
            if reply.drop_after == index:
                self._drop()
                return
            if reply.error_after == index:
                error = {"message": "The model crashed mid-stream.", "type": "server_error"}
                self._send({"error": error})
                self._end()
                return
            time.sleep(delay)
            self._send(event)
        if reply.drop_after is not None:  # past the last chunk: the [DONE] never comes
            self._drop()
            return
        self._end()

    def _plan(self) -> list[tuple[float, dict[str, Any]]]:
        """The chunks to send, each with the pause before it."""
        reply = self._reply
        plan: list[tuple[float, dict[str, Any]]] = []
        if self._azure:  # Azure opens with the prompt's filter results and no choices
            prompt_filter = [{"prompt_index": 0, "content_filter_results": _SAFE}]
            opening = {"id": "", "object": "", "created": 0, "model": ""}
            plan.append((0.0, {**opening, "choices": [], "prompt_filter_results": prompt_filter}))
        plan.append((0.0, self._choice({"role": "assistant", "content": "", "refusal": None})))
        tokens = reply.text.split()
        for start in range(0, len(tokens), reply.chunk_words):
            piece = " ".join(tokens[start : start + reply.chunk_words])
            content = piece if start == 0 else f" {piece}"
            plan.append((reply.chunk_delay_s, self._choice({"content": content})))
        plan.append((0.0, self._choice({}, reply.finish_reason)))
        if self._usage is not None:
            plan.append((0.0, {**self._base, "choices": [], "usage": self._usage}))
        return plan

    def _choice(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        if self._azure:
            choice["content_filter_results"] = _SAFE if delta.get("content") else {}
        return {**self._base, "choices": [choice]}

    def _send(self, event: dict[str, Any] | str) -> None:
        data = event if isinstance(event, str) else json.dumps(event)
        self._chunk(f"data: {data}\n\n".encode())

    def _chunk(self, payload: bytes) -> None:
        self._handler.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self._handler.wfile.flush()

    def _end(self) -> None:
        self._send("[DONE]")
        self._handler.wfile.write(b"0\r\n\r\n")
        self._handler.wfile.flush()

    def _drop(self) -> None:
        """Close the connection mid-body: no last chunk, so the client sees a broken stream."""
        self._handler.wfile.flush()
        self._handler.connection.shutdown(socket.SHUT_RDWR)
        self._handler.close_connection = True


_SAFE = {
    name: {"filtered": False, "severity": "safe"}
    for name in ("hate", "self_harm", "sexual", "violence")
}


def _content_filter_body(reply: ContentFilter) -> dict[str, Any]:
    results: dict[str, Any] = {name: dict(value) for name, value in _SAFE.items()}
    results[reply.category] = {"filtered": True, "severity": reply.severity}
    results["jailbreak"] = {"filtered": False, "detected": False}
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry."
    )
    return {
        "error": {
            "message": message,
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": results,
            },
        }
    }


def _rate_limited(handler: BaseHTTPRequestHandler, reply: RateLimited, azure: bool) -> None:
    wait = reply.retry_after_s
    if wait is None and reply.retry_after_ms is not None:
        wait = math.ceil(reply.retry_after_ms / 1000)
    if azure:
        error: dict[str, Any] = {
            "code": "429",
            "message": "Requests to the ChatCompletions_Create Operation have exceeded the token "
            f"rate limit of your current pricing tier. Please retry after {wait} seconds.",
        }
    else:
        error = {
            "message": "Rate limit reached for requests",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}
    if reply.retry_after_s is not None:
        headers["Retry-After"] = str(reply.retry_after_s)
    if reply.retry_after_ms is not None:
        headers["retry-after-ms"] = str(reply.retry_after_ms)
    _send_json(handler, 429, {"error": error}, headers)


def _embeddings(body: Any, model: str) -> dict[str, Any]:
    request = body if isinstance(body, dict) else {}
    inputs = request.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    dimensions = request.get("dimensions") or EMBEDDING_DIMENSIONS
    data = []
    for index, text in enumerate(items):
        vector = fake_vector(str(text), dimensions)
        embedding: Any = vector
        if request.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = prompt_tokens(request)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    payload = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.send_header("x-request-id", f"req-loopback-{time.monotonic_ns()}")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(payload)


API_KEY = "sk-loopback"
TOKEN = "entra-token-loopback"


async def fake_token() -> str:
    """Stands in for Entra ID's bearer token provider."""
    return TOKEN


def settings_for(
    chat: Sequence[Deployment] = (),
    embeddings: Sequence[Deployment] = (),
    *,
    azure_api: AzureApi | None = None,
    **overrides: Any,
) -> AiSettings:
    """Settings for deployments on fake servers: an OpenAI-compatible server with `API_KEY`,
    or Azure OpenAI on `azure_api` (whose https-only rule the fakes' http URLs skip). The
    default models are the first deployments'."""
    azure = azure_api is not None
    return AiSettings(
        backend=Backend.AZURE if azure else Backend.OPENAI,
        azure_api=azure_api or AzureApi.V1,
        api_key=None if azure else API_KEY,
        chat_model=chat[0].model if chat else None,
        embeddings_model=embeddings[0].model if embeddings else None,
        chat_deployments=tuple(chat),
        embeddings_deployments=tuple(embeddings),
        **overrides,
    )


@asynccontextmanager
async def open_llm(
    settings: AiSettings, *, clock: Callable[[], float] | None = None
) -> AsyncIterator[OpenAiLlm]:
    """The port on `settings`, with `fake_token` for Entra ID, closed afterwards."""
    llm = OpenAiLlm(settings, token_provider=fake_token, clock=clock or time.monotonic)
    try:
        yield llm
    finally:
        await llm.aclose()
