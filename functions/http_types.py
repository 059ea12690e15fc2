"""The app's HTTP types: FastAPI's, as the Python worker's HTTP streams require.

The AI gateway streams its answers, which in Azure means `azurefunctions-extensions-http-fastapi`.
Once an app imports that package, the worker hands every HTTP function of the app the FastAPI
(starlette) `Request` and sends what it returns as a FastAPI response, whatever the function's
annotations say; one annotated `func.HttpRequest` does not load. So each route is served through
the FastAPI types (`functions.access` does it where each route declares its permission), and a
route written for `func.HttpRequest` gets one built from the FastAPI request, with its
`func.HttpResponse` sent back as a FastAPI `Response`:

- the body is read whole (the host limits its size), headers are lower-cased with repeats
  joined by ", ", a repeated query parameter keeps its first value, and the route's values are
  the request's `path_params`, as the worker gives them to a `func.HttpRequest`;
- a route written for the FastAPI types (a stream) takes and returns them as they are.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import typing
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from embedded.function_threads import FunctionThreads, default_thread_count

T = TypeVar("T")


def _thread_count() -> int:
    raw = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "").strip()
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 1000 else default_thread_count()


# A route's blocking work runs on these threads (as many as the worker's for sync functions,
# `PYTHON_THREADPOOL_THREAD_COUNT`): one queue item a call, and results that finish together
# reach the loop with one wake-up, where `asyncio.to_thread` wakes it once a call.
_THREADS = FunctionThreads(_thread_count(), name="routes")


async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` on the routes' threads, in a copy of this context."""
    context = contextvars.copy_context()
    return await _THREADS.run(functools.partial(context.run, function, *args, **kwargs))


def joined_headers(req: Request) -> dict[str, str]:
    """The request's headers as a `func.HttpRequest` has them: lower-case, repeats joined.
    Read from the ASGI scope (names and values as Latin-1, as starlette reads them): a route's
    every request pays for this, and starlette's `Headers` cost twice as much."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in req.scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def to_function_request(req: Request, headers: dict[str, str]) -> func.HttpRequest:
    """The `func.HttpRequest` a classic route expects, from the FastAPI request and its
    `joined_headers`."""
    scope = req.scope
    query = scope.get("query_string", b"").decode("latin-1")
    params: dict[str, str] = {}
    if query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(name, value)
    return func.HttpRequest(
        method=scope["method"],
        url=_url(scope, headers, query),
        headers=headers,
        params=params,
        route_params={str(k): str(v) for k, v in scope.get("path_params", {}).items()},
        body=await req.body(),
    )


def _url(scope: dict[str, Any], headers: dict[str, str], query: str) -> str:
    """The request's URL as starlette's `Request.url` gives it (the Host header, else the
    server's address), without building starlette's `URL`."""
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope.get("path", "/"))
    url = f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{path}"
    return f"{url}?{query}" if query else url


def to_response(value: object) -> Response:
    """A route's result as the FastAPI response the worker sends."""
    if isinstance(value, Response):
        return value
    if isinstance(value, func.HttpResponse):
        return _from_function_response(value)
    if value is None:
        return Response(status_code=204)
    raise TypeError(f"an HTTP route returned {type(value).__name__}, not a response")


def _from_function_response(value: func.HttpResponse) -> Response:
    body = value.get_body() or b""
    response = Response(content=body, status_code=value.status_code)
    has_content_type = False
    for name, header in value.headers.items():
        if name.lower() == "content-type":
            has_content_type = True
        response.headers[name] = header
    if not has_content_type:
        mimetype = value.mimetype or "text/plain"
        charset = value.charset or "utf-8"
        response.headers["content-type"] = (
            f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
        )
    return response


def takes_fastapi_request(function: Callable[..., Any], parameter: str) -> bool:
    """Whether `function` is written for the FastAPI types: its `parameter` is a `Request`."""
    annotation = _hints(function).get(parameter)
    return isinstance(annotation, type) and issubclass(annotation, Request)


def fastapi_signature(function: Callable[..., Any], parameter: str) -> inspect.Signature:
    """`function`'s signature with `parameter` a FastAPI `Request` and a `Response` returned,
    every annotation resolved to a type: what the worker (and the devhost) read to bind it."""
    hints = _hints(function)
    signature = inspect.signature(function)
    parameters = [
        p.replace(annotation=Request if name == parameter else hints.get(name, p.annotation))
        for name, p in signature.parameters.items()
    ]
    return signature.replace(parameters=parameters, return_annotation=Response)


def annotations_of(signature: inspect.Signature) -> dict[str, Any]:
    """The `__annotations__` that match `signature`."""
    annotations = {
        name: p.annotation
        for name, p in signature.parameters.items()
        if p.annotation is not inspect.Parameter.empty
    }
    annotations["return"] = signature.return_annotation
    return annotations


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # an annotation only a type checker resolves: read it as written
        return dict(getattr(function, "__annotations__", {}))
