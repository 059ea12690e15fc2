"""The built-in activity behind `context.call_http`: one HTTP request, its response as JSON."""

from __future__ import annotations

import json

import aiohttp


class HttpActivityError(Exception):
    """The request was malformed or could not be sent."""


async def call_http(request_json: str | None) -> str:
    """Send the DurableHttpRequest and return the DurableHttpResponse JSON text."""
    try:
        request = json.loads(request_json or "null")
        method = str(request["method"]).upper()
        uri = str(request["uri"])
    except (ValueError, TypeError, KeyError) as error:
        raise HttpActivityError(f"invalid call_http request: {error!r}") from error
    if request.get("tokenSource"):
        raise HttpActivityError("call_http token sources (managed identity) need Azure")
    headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
    content = request.get("content")
    timeout = aiohttp.ClientTimeout(total=100)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.request(method, uri, data=content, headers=headers) as response:
                body = await response.text()
                return json.dumps(
                    {
                        "statusCode": response.status,
                        "headers": dict(response.headers),
                        "content": body,
                    }
                )
    except (aiohttp.ClientError, TimeoutError) as error:
        raise HttpActivityError(f"call_http {method} {uri} failed: {error!r}") from error
