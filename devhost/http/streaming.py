"""HTTP streams: the functions that take the FastAPI `Request` of
`azurefunctions-extensions-http-fastapi`, and what their results become.

In Azure, once an app imports that package (and sets `PYTHON_ENABLE_INIT_INDEXING=1`; the
worker for Python 3.13 and later needs only the import), the Python worker proxies its HTTP
functions through uvicorn: the trigger's parameter receives a FastAPI (starlette) `Request`
whose body streams in, and what the function returns is FastAPI's response, streamed out. The
devhost does the same for each function whose trigger parameter is annotated with that
`Request` (or a subclass); the others keep `func.HttpRequest`.

Nothing here imports starlette: an app that uses these types has imported it already.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from devhost.appsettings import AppSettings
from devhost.http.asgi import Message, Receive
from devhost.indexing import FunctionSpec

EXTENSION_MODULE = "azurefunctions.extensions.http.fastapi"
INIT_INDEXING_SETTING = "PYTHON_ENABLE_INIT_INDEXING"
TRUE = ("1", "true", "t", "yes", "y")  # what the worker takes as true


def takes_asgi_request(function: FunctionSpec) -> bool:
    """True when the trigger's parameter is annotated with starlette's `Request`, which the
    extension's `Request` is (the worker checks the same subclass relation). String annotations
    (`from __future__ import annotations`) were resolved when the app was indexed."""
    requests = sys.modules.get("starlette.requests")
    annotation = function.annotations.get(function.trigger.name)
    return (
        requests is not None
        and isinstance(annotation, type)
        and issubclass(annotation, requests.Request)
    )


def asgi_request(scope: Message, receive: Receive) -> Any:
    """The starlette `Request` a function receives (FastAPI's `Request` is the same class)."""
    from starlette.requests import Request

    return Request(scope, receive)


def is_asgi_response(value: object) -> bool:
    responses = sys.modules.get("starlette.responses")
    return responses is not None and isinstance(value, responses.Response)


def asgi_response(value: object) -> Any:
    """What FastAPI sends for a function's result: a starlette `Response` (StreamingResponse,
    JSONResponse, FileResponse...) as it is, anything else (a dict, a list, a str, a pydantic
    model, None) as JSON through `jsonable_encoder`, as FastAPI's route does in the worker."""
    if is_asgi_response(value):
        return value
    from starlette.responses import JSONResponse

    try:
        from fastapi.encoders import jsonable_encoder
    except ImportError:  # starlette alone: plain JSON
        return JSONResponse(value)
    return JSONResponse(jsonable_encoder(value))


def azure_differences(
    streaming: Iterable[FunctionSpec], classic: Iterable[FunctionSpec], settings: AppSettings
) -> list[str]:
    """Why this app's HTTP functions would not run in Azure as they do in the devhost, which
    serves streaming and classic functions side by side: in Azure the extension's import
    switches every HTTP function of the app to the FastAPI types, and the worker before Python
    3.13 enables that only with `PYTHON_ENABLE_INIT_INDEXING`."""
    streaming_names = sorted(f.name for f in streaming)
    classic_names = sorted(f.name for f in classic)
    notes = []
    if streaming_names and settings.get(INIT_INDEXING_SETTING, "").strip().lower() not in TRUE:
        notes.append(
            f"{_listed(streaming_names)} take the FastAPI Request: in Azure, the Python worker "
            f"before Python 3.13 needs the app setting {INIT_INDEXING_SETTING}=1 for HTTP "
            "streams (without it they do not work there), and this app does not set it"
        )
    if classic_names and (streaming_names or EXTENSION_MODULE in sys.modules):
        notes.append(
            f"{_listed(classic_names)} take func.HttpRequest while the app imports "
            f"{EXTENSION_MODULE}: in Azure, every HTTP function of such an app receives the "
            "FastAPI Request, and one annotated func.HttpRequest (or func.HttpResponse) fails to "
            "load; the devhost serves both kinds"
        )
    return notes


def _listed(names: list[str], most: int = 4) -> str:
    """Names for a start-up note: the first few, and how many more."""
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])} and {len(names) - most} more"
