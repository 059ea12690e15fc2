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

import inspect
import typing
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response


def joined_headers(req: Request) -> dict[str, str]:
    """The request's headers as a `func.HttpRequest` has them: lower-case, repeats joined."""
    headers: dict[str, str] = {}
    for name, value in req.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def to_function_request(req: Request, headers: dict[str, str]) -> func.HttpRequest:
    """The `func.HttpRequest` a classic route expects, from the FastAPI request and its
    `joined_headers`."""
    params: dict[str, str] = {}
    for name, value in req.query_params.multi_items():
        params.setdefault(name, value)
    return func.HttpRequest(
        method=req.method,
        url=str(req.url),
        headers=headers,
        params=params,
        route_params={str(k): str(v) for k, v in req.path_params.items()},
        body=await req.body(),
    )


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
