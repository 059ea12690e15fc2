"""An upstream's chat stream read as it came: server-sent events decoded to the chunks' JSON,
without the SDK's typed chunk objects (building those was most of a streamed request's CPU).

The SDK still sends the request (auth, base URL, the Azure paths, timeouts) and raises for an
error status; this reads the body: `data:` lines (several join with a newline), a blank line
ends an event, comments and other fields are skipped, `data: [DONE]` ends the stream. An event
whose JSON holds an `error` raises the SDK's `APIError`, as the SDK's own stream does, so the
pool and the stream read it the same way."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DONE = "[DONE]"


class RawChunks:
    """The chunks of one streamed response, as dicts; `close()` closes the connection."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._lines = response.aiter_lines()
        self._done = False

    def __aiter__(self) -> RawChunks:
        return self

    async def __anext__(self) -> dict[str, Any]:
        import openai

        try:
            return await self._next()
        except (StopAsyncIteration, openai.APIError):
            raise
        except Exception as error:  # the HTTP client's own: as the SDK's stream raises them
            raise _as_sdk_error(error, self._response) from error

    async def _next(self) -> dict[str, Any]:
        if self._done:
            raise StopAsyncIteration
        data: list[str] = []
        async for line in self._lines:
            if line:
                if line.startswith("data:"):
                    data.append(line[6:] if line.startswith("data: ") else line[5:])
                continue  # a comment (":"), or a field the chunks do not use
            if not data:
                continue
            text = "\n".join(data)
            data = []
            if text.startswith(DONE):
                break
            return self._chunk(text)
        self._done = True
        raise StopAsyncIteration

    def _chunk(self, text: str) -> dict[str, Any]:
        import openai

        request = self._response.request
        try:
            chunk = json.loads(text)
        except ValueError:
            raise openai.APIError("an event that is not JSON", request, body=None) from None
        if not isinstance(chunk, dict):
            raise openai.APIError("an event that is not a JSON object", request, body=None)
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else None
            raise openai.APIError(str(message or "the stream failed"), request, body=error)
        return chunk

    async def close(self) -> None:
        self._done = True
        await self._response.aclose()


def _as_sdk_error(error: Exception, response: Any) -> Exception:
    """An error of the SDK's HTTP client (httpx) as the SDK raises it: a timeout, or a failed
    connection; anything else as it is."""
    import openai

    client = sys.modules.get(type(response).__module__.split(".")[0])
    timeout = getattr(client, "TimeoutException", None)
    transport = getattr(client, "TransportError", None)
    if timeout is not None and isinstance(error, timeout):
        return openai.APITimeoutError(request=response.request)
    if transport is not None and isinstance(error, transport):
        return openai.APIConnectionError(message=str(error), request=response.request)
    return error
