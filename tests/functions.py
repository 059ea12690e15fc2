"""A blueprint's HTTP function, called as the worker calls it: with the FastAPI `Request` its
route takes (`functions.http_types`), built here from a `func.HttpRequest`, and its FastAPI
response read back as a `func.HttpResponse`, so a test can write either."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func
from starlette.requests import Request
from starlette.responses import Response


def blueprint_function(bp: Any, name: str) -> Callable[..., func.HttpResponse]:
    """`name`'s route, to call synchronously with a `func.HttpRequest` (and bindings by name)."""
    route = user_function(bp, name)
    return lambda req, **bindings: asyncio.run(call_route(route, req, **bindings))


def async_blueprint_function(bp: Any, name: str | None = None) -> Callable[..., Any]:
    """`name`'s (or the blueprint's only) route, to await with a `func.HttpRequest`."""
    route = user_function(bp, name)

    async def call(req: func.HttpRequest, **bindings: Any) -> func.HttpResponse:
        return await call_route(route, req, **bindings)

    return call


def user_function(bp: Any, name: str | None = None) -> Any:
    for builder in bp._function_builders:
        function = builder.build()
        if name is None or function.get_function_name() == name:
            return function.get_user_function()
    raise LookupError(name)


async def call_route(route: Any, req: func.HttpRequest, **bindings: Any) -> func.HttpResponse:
    response = await route(req=fastapi_request(req), **bindings)
    return function_response(response)


def fastapi_request(req: func.HttpRequest) -> Request:
    """The FastAPI (starlette) request the worker would hand the route for `req`."""
    url = urlsplit(req.url)
    body = req.get_body()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    query = url.query or urlencode(dict(req.params))
    scope = {
        "type": "http",
        "method": req.method,
        "scheme": url.scheme or "http",
        "path": url.path or "/",
        "raw_path": (url.path or "/").encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in req.headers.items()]
        + [(b"host", (url.netloc or "localhost").encode())],
        "server": ("localhost", 80),
        "client": ("127.0.0.1", 1),
        "path_params": dict(req.route_params),
        "root_path": "",
    }
    return Request(scope, receive)


def function_response(response: Response) -> func.HttpResponse:
    content_type = response.headers.get("content-type", "")
    mimetype, _, parameters = content_type.partition(";")
    charset = parameters.partition("charset=")[2].strip() or "utf-8"
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length",)}
    return func.HttpResponse(
        bytes(response.body),
        status_code=response.status_code,
        headers=headers,
        mimetype=mimetype.strip() or None,
        charset=charset,
    )
