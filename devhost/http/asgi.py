"""An aiohttp request as an ASGI HTTP connection, for functions that take a FastAPI `Request`.

In Azure, the Python worker serves such functions through uvicorn: the Functions host proxies
the caller's request to it, so the body streams in as the caller sends it. Here the scope is
built from the aiohttp request and `receive` reads its body as it arrives, within the host's
limits, then waits for the caller to go away, as uvicorn's does (ASGI spec version 2.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from devhost.http.convert import function_headers
from devhost.http.limits import BodyReader, BodyRefused, HttpLimits

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}  # uvicorn's
DISCONNECT: Message = {"type": "http.disconnect"}
TRANSPORT_POLL_S = 0.1  # how often an open connection is checked for the caller leaving


def asgi_scope(
    request: web.Request,
    route_values: Mapping[str, str],
    origin: str,
    invocation_id: str,
) -> Message:
    """The ASGI scope of `request`, with the route values as `path_params` (as the worker
    copies them onto the FastAPI request).

    The headers are the ones a function's `HttpRequest` gets (X-Forwarded-For is the socket's
    peer), with `x-ms-invocation-id` as the host adds it when it proxies to the worker. The
    scheme and `Host` are the host's configured `origin`, so that `request.url` and the links
    built from it never follow a forged Host header, as for `HttpRequest.url`."""
    base = urlsplit(origin)
    scheme = base.scheme or "http"
    server_port = base.port or (443 if scheme == "https" else 80)
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in function_headers(request).items()
        if name != "host"
    ]
    headers.append((b"host", base.netloc.encode("latin-1")))
    headers.append((b"x-ms-invocation-id", invocation_id.encode("latin-1")))
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode("latin-1"),
        "query_string": request.rel_url.raw_query_string.encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None,
        "server": (base.hostname or "127.0.0.1", server_port),
        "path_params": dict(route_values),
        "state": {},
    }


class AsgiConnection:
    """The `receive` side of one request, and whether its caller is still there.

    `receive` gives the body as `http.request` messages, then `http.disconnect` once the caller
    has gone (or the host ends the connection). A body the limits refuse ends as a disconnect
    too, as a function behind the Functions host sees it when the host refuses the rest of the
    body; `refusal` then says why, for the host's answer (413 or 408)."""

    def __init__(self, request: web.Request, limits: HttpLimits) -> None:
        self._request = request
        self._body = BodyReader(request, limits)
        self._body_done = False
        self._gone = asyncio.Event()
        self.gone_reason: str | None = None
        self.refusal: BodyRefused | None = None

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    def end(self, reason: str) -> None:
        """The connection is over for the function (the first reason given is kept)."""
        if not self._gone.is_set():
            self.gone_reason = reason
            self._gone.set()

    async def wait_gone(self) -> None:
        await self._gone.wait()

    async def receive(self) -> Message:
        if self._body_done or self._gone.is_set():
            await self._gone.wait()
            return dict(DISCONNECT)
        if not self._request.body_exists:
            self._body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        try:
            chunk = await self._body.next_chunk()
        except BodyRefused as refused:
            self._body_done = True
            self.refusal = refused
            self.end(f"the request body was refused: {refused.message}")
            return dict(DISCONNECT)
        except ConnectionError:  # the caller went away in the middle of its body
            self._body_done = True
            self.end("the client closed the connection")
            return dict(DISCONNECT)
        more = bool(chunk) and not self._request.content.at_eof()
        self._body_done = not more
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def watch(self) -> None:
        """Until the connection ends: notice the caller leaving. aiohttp has no event for a
        connection lost while its handler runs, so the transport is looked at every
        `TRANSPORT_POLL_S`; a failed write notices it at once."""
        while not self._gone.is_set():
            transport = self._request.transport
            if transport is None or transport.is_closing():
                self.end("the client closed the connection")
                return
            await asyncio.sleep(TRANSPORT_POLL_S)
