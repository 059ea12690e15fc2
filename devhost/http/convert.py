"""aiohttp requests to `func.HttpRequest`, and function results to aiohttp responses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func
from aiohttp import web


def function_headers(request: web.Request) -> dict[str, str]:
    """The request's headers as a function sees them: lower-case names, repeats joined, and
    `X-Forwarded-For` the socket's peer, whatever the caller sent (as a front end sets it)."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key == "x-forwarded-for":
            continue
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    headers["x-forwarded-for"] = request.remote or ""
    return headers


def to_function_request(
    request: web.Request, body: bytes, route_params: Mapping[str, str], origin: str | None = None
) -> func.HttpRequest:
    """`origin` (the host's configured base URL) replaces the scheme and host the caller sent, so
    the links a function builds from `req.url` never follow a forged Host header.

    `X-Forwarded-For` is the socket's peer, whatever the caller sent, as a front end sets it:
    an app may trust it to tell loopback callers from others."""
    headers = function_headers(request)
    params: dict[str, str] = {}
    for name, value in request.query.items():
        params.setdefault(name, value)
    return func.HttpRequest(
        method=request.method,
        url=origin.rstrip("/") + str(request.rel_url) if origin else str(request.url),
        headers=headers,
        params=params,
        route_params=dict(route_params),
        body=body,
    )


def to_web_response(value: Any, invocation_id: str) -> web.Response:
    """Map what the function returned (or set on its http output) as the worker does."""
    if isinstance(value, func.HttpResponse):
        response = web.Response(status=value.status_code, body=value.get_body() or b"")
        has_content_type = False
        if value.headers:
            for name, header in value.headers.items():
                if name.lower() == "set-cookie":
                    continue
                if name.lower() == "content-type":
                    has_content_type = True
                response.headers[name] = header
            for cookie in _cookies(value):
                response.headers.add("Set-Cookie", cookie)
        if not has_content_type:
            mimetype = value.mimetype or "text/plain"
            charset = value.charset or "utf-8"
            response.headers["Content-Type"] = (
                f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
            )
    elif value is None:
        response = web.Response(status=204)
    elif isinstance(value, str):
        response = web.Response(status=200, text=value)
    elif isinstance(value, bytes):
        response = web.Response(status=200, body=value, content_type="application/octet-stream")
    else:
        response = web.Response(
            status=200, text=json.dumps(value, default=str), content_type="application/json"
        )
    response.headers["x-ms-invocation-id"] = invocation_id
    return response


def _cookies(value: func.HttpResponse) -> list[str]:
    headers = value.headers
    get_all = getattr(headers, "get_all", None)
    if get_all is not None:
        return list(get_all("Set-Cookie"))
    cookie = headers.get("Set-Cookie")
    return [cookie] if cookie else []


def error_response(status: int, message: str, **fields: Any) -> web.Response:
    return web.json_response({"error": message, **fields}, status=status)
