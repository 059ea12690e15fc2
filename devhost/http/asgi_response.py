"""Sending a starlette (FastAPI) response through aiohttp chunk by chunk, as uvicorn does.

The response is run as the ASGI app it is, so every starlette response type behaves as under
the worker's uvicorn in Azure: a `StreamingResponse` over a sync or async iterator, a
`FileResponse`, background tasks. Each chunk is written with `await response.write(...)`,
whose drain holds the function's iterator back while the caller reads slowly: the body is
never held whole.

When the caller goes away (a write fails, or the connection closes while the function waits
for its next chunk), the task sending the response is cancelled, which cancels what the
iterator awaits (an upstream call), and the iterator is closed, so the function's `finally`
blocks run at once. A response that fails before its status line is a 500, as uvicorn
answers; one that fails after it closes the connection, as the Functions host then does, and is
logged.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import sys
import time
from typing import Any, Protocol

from aiohttp import web

from devhost.http.asgi import AsgiConnection, Message, Receive
from devhost.http.convert import error_response
from devhost.http.limits import refusal_response

log = logging.getLogger("devhost.http")

Send = Any  # Callable[[Message], Awaitable[None]], as starlette declares it


class AsgiResponse(Protocol):
    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None: ...


class ClientGone(ConnectionError):
    """A write to a caller that has gone, raised into the response that sent it."""


class _AiohttpSend:
    """The ASGI `send` of one response, onto an aiohttp `StreamResponse`."""

    def __init__(
        self,
        request: web.Request,
        connection: AsgiConnection,
        invocation_id: str,
        flush_headers: bool,
    ) -> None:
        self._request = request
        self._connection = connection
        self._invocation_id = invocation_id
        self._flush_headers = flush_headers
        self._empty_body = False
        self.response: web.StreamResponse | None = None
        self.complete = False
        self.body_bytes = 0

    async def __call__(self, message: Message) -> None:
        if self._connection.gone:
            raise ClientGone(self._connection.gone_reason or "the connection is over")
        kind = message["type"]
        if kind == "http.response.start":
            await self._start(int(message["status"]), message.get("headers", ()))
        elif kind == "http.response.body":
            await self._body(bytes(message.get("body", b"")), bool(message.get("more_body")))
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP response")

    async def _start(self, status: int, headers: Any) -> None:
        if self.response is not None:
            raise RuntimeError("the response has already started")
        response = web.StreamResponse(status=status)
        for name, value in headers:
            key = bytes(name).decode("latin-1")
            if key.lower() != "transfer-encoding":  # aiohttp frames the body itself
                response.headers.add(key, bytes(value).decode("latin-1"))
        response.headers["x-ms-invocation-id"] = self._invocation_id
        # As uvicorn: no body on the wire for HEAD, 1xx, 204 and 304 (the app may send one).
        self._empty_body = self._request.method == "HEAD" or status < 200 or status in (204, 304)
        self.response = response
        try:
            await response.prepare(self._request)
            if self._flush_headers:  # the status line now, not with the first chunk
                await response.write(b"")
        except ConnectionError as error:
            self._lost(error)

    async def _body(self, body: bytes, more: bool) -> None:
        if self.response is None:
            raise RuntimeError("a response body was sent before its start")
        if self.complete:
            raise RuntimeError("the response is already complete")
        try:
            if body and not self._empty_body:
                await self.response.write(body)
                self.body_bytes += len(body)
            if not more:
                await self.response.write_eof()
                self.complete = True
        except ConnectionError as error:
            self._lost(error)

    def _lost(self, error: ConnectionError) -> None:
        self._connection.end("the client closed the connection")
        raise ClientGone(str(error)) from error


async def send_asgi_response(
    request: web.Request,
    response: AsgiResponse,
    scope: Message,
    connection: AsgiConnection,
    invocation_id: str,
    function: str,
) -> web.StreamResponse:
    """Send `response` for `request`; returns the aiohttp response for the handler to return."""
    started = time.perf_counter()
    send = _AiohttpSend(
        request, connection, invocation_id, flush_headers=hasattr(response, "body_iterator")
    )
    source = _threaded_source(response)
    task = asyncio.ensure_future(response(scope, connection.receive, send))
    gone = asyncio.ensure_future(connection.wait_gone())
    error: BaseException | None = None
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()  # the caller has gone: cancel what the function's iterator awaits
        error = await _outcome(task)
    finally:
        gone.cancel()
        if not task.done():  # this handler itself was cancelled
            task.cancel()
            await asyncio.wait((task,))
        await _close_body(response, source, function, invocation_id)

    record = {
        "event": "http_response",
        "function": function,
        "invocation_id": invocation_id,
        "body_bytes": send.body_bytes,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    if send.complete:
        assert send.response is not None
        if error is not None:  # a background task failed, after the response
            log.error(_json_line(record, "Failed", error), exc_info=error)
        return send.response
    if connection.gone:  # the caller left, the body was refused, or the host is stopping
        log.info(_json_line(record, "Disconnected", connection.gone_reason))
        if send.response is None and connection.refusal is not None:
            return refusal_response(connection.refusal)
        return _close(request, send.response)
    if error is None:
        error = RuntimeError("the response ended without completing its body")
    log.error(_json_line(record, "Failed", error), exc_info=error)
    if send.response is None:
        failed = error_response(500, f"function {function!r} failed", invocationId=invocation_id)
        failed.headers["x-ms-invocation-id"] = invocation_id
        return failed
    return _close(request, send.response)


async def _outcome(task: asyncio.Future[None]) -> BaseException | None:
    """What the response task ended with: None, or the error it raised. Its cancellation (by
    `send_asgi_response`) is not an error; the cancellation of the caller's task is re-raised."""
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        return None
    except Exception as error:
        return error
    return None


def _threaded_source(response: AsgiResponse) -> object:
    """The sync iterable behind a `StreamingResponse`, which starlette iterates on threads
    through its `iterate_in_threadpool` generator; None for an async one.

    Read before the response runs, from that generator's arguments: closing the generator does
    not release the iterable, since the idle thread that ran its last `next` still refers to
    it, so the iterable is closed by name."""
    iterator = getattr(response, "body_iterator", None)
    concurrency = sys.modules.get("starlette.concurrency")
    wrapper = getattr(concurrency, "iterate_in_threadpool", None)
    frame = getattr(iterator, "ag_frame", None)
    if (
        wrapper is None
        or frame is None
        or getattr(iterator, "ag_code", None) is not getattr(wrapper, "__code__", None)
    ):
        return None
    return frame.f_locals.get("iterator")


async def _close_body(
    response: AsgiResponse, source: object, function: str, invocation_id: str
) -> None:
    """Close the response's body iterator (an async generator's `aclose`), so that the
    function's `finally` blocks run now rather than when the generator is collected; and the
    sync generator behind it, if any (its `finally` may block: it runs on a thread)."""
    iterator = getattr(response, "body_iterator", None)
    aclose = getattr(iterator, "aclose", None)
    close = getattr(source, "close", None)
    try:
        if aclose is not None:
            await aclose()
        finished = inspect.isgenerator(source) and inspect.getgeneratorstate(source) == "GEN_CLOSED"
        if callable(close) and not finished:
            await asyncio.to_thread(close)
    except Exception:
        log.warning(
            "function %s (invocation %s): closing its response body raised",
            function,
            invocation_id,
            exc_info=True,
        )


def _close(request: web.Request, response: web.StreamResponse | None) -> web.StreamResponse:
    """End the connection without finishing the body, so that the caller sees it cut short,
    never a complete-looking response."""
    transport = request.transport
    if transport is not None:
        transport.close()
    if response is None:
        response = web.Response(status=500)
    response.force_close()
    return response


def _json_line(record: dict[str, Any], outcome: str, detail: object) -> str:
    text = f"{type(detail).__name__}: {detail}" if isinstance(detail, BaseException) else detail
    return json.dumps({**record, "outcome": outcome, "detail": text}, default=str)
