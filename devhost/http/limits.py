"""Reading HTTP requests within limits: the body size and the headers and body timeouts.

Azure's front end refuses bodies over 100 MB (`FUNCTIONS_REQUEST_BODY_SIZE_LIMIT` changes it)
and drops requests that stall. The devhost reads a body as it arrives, as sent: like the
Functions host, it does not decode a `Content-Encoding`, so a compressed body reaches the
function compressed (and a gzip bomb costs the host only its compressed size). A body over the
limit is refused as soon as its `Content-Length`, or the bytes read so far, exceed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from devhost.appsettings import AppSettings
from devhost.errors import StartupError

BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
HEADERS_TIMEOUT_SETTING = "DEVHOST_HTTP_HEADERS_TIMEOUT_S"
BODY_TIMEOUT_SETTING = "DEVHOST_HTTP_BODY_TIMEOUT_S"
DEFAULT_BODY_SIZE_LIMIT = 100 * 1024 * 1024  # the Functions host's default
# Kestrel's MaxRequestHeadersTotalSize: past it the Functions host answers 431. The parser reads
# one header line up to PARSER_FIELD_LIMIT, so a larger one is refused (400) before it is
# buffered whole, and anything between the two gets the 431 the host would give.
HEADERS_SIZE_LIMIT = 32 * 1024
REQUEST_TARGET_LIMIT = 8 * 1024  # Kestrel's MaxRequestLineSize: past it, 414
PARSER_FIELD_LIMIT = 1024 * 1024
# Kestrel's RequestHeadersTimeout is 30 s; the body gets as long between two of its chunks.
DEFAULT_HEADERS_TIMEOUT_S = 30.0
DEFAULT_BODY_TIMEOUT_S = 30.0
READ_CHUNK_BYTES = 64 * 1024


class HttpLimitsError(StartupError):
    """A request limit setting that is not a positive number."""


class BodyRefused(Exception):
    """The body cannot be read within the limits; `status` is 413 or 408."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class HttpLimits:
    body_size: int = DEFAULT_BODY_SIZE_LIMIT
    headers_timeout_s: float = DEFAULT_HEADERS_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: AppSettings) -> HttpLimits:
        return cls(
            body_size=int(_positive(settings, BODY_SIZE_LIMIT_SETTING, DEFAULT_BODY_SIZE_LIMIT)),
            headers_timeout_s=_positive(
                settings, HEADERS_TIMEOUT_SETTING, DEFAULT_HEADERS_TIMEOUT_S
            ),
            body_timeout_s=_positive(settings, BODY_TIMEOUT_SETTING, DEFAULT_BODY_TIMEOUT_S),
        )


def _positive(settings: AppSettings, name: str, default: float) -> float:
    text = settings.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise HttpLimitsError(f"app setting {name} must be a positive number, not {text!r}")
    return value


def refuse_declared_length(request: web.Request, limits: HttpLimits) -> None:
    """Raise BodyRefused (413) when the body's `Content-Length` is over the limit, before any
    of it is read."""
    declared = request.content_length
    if declared is not None and declared > limits.body_size:
        raise BodyRefused(
            413, f"the request body is declared as {declared} bytes, over {_limit(limits)}"
        )


class BodyReader:
    """A request body read chunk by chunk as it arrives, within the limits: the size limit on
    the bytes read so far, and the timeout on each wait for more."""

    def __init__(self, request: web.Request, limits: HttpLimits) -> None:
        self._stream = request.content
        self._limits = limits
        self.received = 0

    async def next_chunk(self) -> bytes:
        """The next bytes of the body, b"" at its end; raises BodyRefused (413) past the size
        limit, or (408) when no byte of it arrives for `body_timeout_s`.

        What has already arrived is taken as it is: the timeout is armed only to wait for more,
        since a small body usually comes with its headers (and a GET has none)."""
        stream = self._stream
        chunk = stream.read_nowait()
        if not chunk:
            if stream.at_eof():
                return b""
            try:
                async with asyncio.timeout(self._limits.body_timeout_s):
                    chunk = await stream.readany()
            except TimeoutError:
                raise BodyRefused(
                    408,
                    f"the request body stalled: no byte for {self._limits.body_timeout_s:g} s "
                    f"({self.received} bytes received)",
                ) from None
            if not chunk:
                return b""
        if self.received + len(chunk) > self._limits.body_size:
            raise BodyRefused(413, f"the request body is over {_limit(self._limits)}")
        self.received += len(chunk)
        return chunk


async def read_body(request: web.Request, limits: HttpLimits) -> bytes:
    """The body as sent, whole; raises BodyRefused as `refuse_declared_length` and
    `BodyReader.next_chunk` do."""
    refuse_declared_length(request, limits)
    if not request.body_exists:
        return b""
    reader = BodyReader(request, limits)
    body = bytearray()
    while chunk := await reader.next_chunk():
        body += chunk
    return bytes(body)


def _limit(limits: HttpLimits) -> str:
    return f"the limit of {limits.body_size} bytes ({BODY_SIZE_LIMIT_SETTING})"


def refusal_response(refused: BodyRefused) -> web.Response:
    """The answer to a body that was not read whole: the connection closes after it, since
    the rest of the body is still on the wire."""
    response = web.json_response({"error": refused.message}, status=refused.status)
    response.force_close()
    return response


@web.middleware
async def refuse_large_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """414 for a request target over `REQUEST_TARGET_LIMIT` bytes, 431 for header lines that
    total over `HEADERS_SIZE_LIMIT`, as the Functions host answers (JSON here)."""
    if len(request.raw_path) > REQUEST_TARGET_LIMIT:
        return web.json_response(
            {"error": f"the request target is over {REQUEST_TARGET_LIMIT} bytes"}, status=414
        )
    size = sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
    if size > HEADERS_SIZE_LIMIT:
        return web.json_response(
            {"error": f"the request headers total {size} bytes, over {HEADERS_SIZE_LIMIT}"},
            status=431,
        )
    return await handler(request)
