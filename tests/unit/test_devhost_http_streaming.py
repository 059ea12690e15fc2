"""HTTP streams in the devhost, piece by piece: which functions take the FastAPI Request (string
annotations resolved), what their results become, the ASGI scope and `receive` built from an
aiohttp request, and the invoker binding the Request while input bindings read the HttpRequest.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func
import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, StreamingResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from devhost.appsettings import AppSettings
from devhost.http.asgi import AsgiConnection, asgi_scope
from devhost.http.convert import to_function_request
from devhost.http.limits import HttpLimits
from devhost.http.streaming import asgi_response, azure_differences, takes_asgi_request
from devhost.indexing import BindingSpec, FunctionSpec, index_app
from devhost.invocation import Invoker

if TYPE_CHECKING:
    from collections.abc import Iterator  # only for type checkers: unresolvable at run time

pytestmark = pytest.mark.unit

NO_SETTINGS = AppSettings({}, environ={})


class TracedRequest(Request):
    """A subclass of the extension's Request still makes a stream."""


def http_functions(**handlers: Any) -> dict[str, FunctionSpec]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    for name, handler in handlers.items():
        app.function_name(name)(app.route(route=name)(handler))
    return {f.name: f for f in index_app(app, NO_SETTINGS)}


def test_a_function_streams_when_its_trigger_takes_the_extensions_request() -> None:
    async def streaming(req: Request) -> StreamingResponse: ...

    async def subclass(req: TracedRequest) -> JSONResponse: ...

    def classic(req: func.HttpRequest) -> func.HttpResponse: ...

    def bare(req):  # type: ignore[no-untyped-def]
        ...

    def one_unresolvable(req: Request, extra: Iterator[int] | None = None) -> JSONResponse: ...

    functions = http_functions(
        streaming=streaming,
        subclass=subclass,
        classic=classic,
        bare=bare,
        one_unresolvable=one_unresolvable,
    )
    assert functions["streaming"].annotations["req"] is Request  # the string was resolved
    assert {name: takes_asgi_request(f) for name, f in functions.items()} == {
        "streaming": True,
        "subclass": True,
        "classic": False,
        "bare": False,
        "one_unresolvable": True,
    }
    assert functions["one_unresolvable"].annotations["extra"] == "Iterator[int] | None"


def test_a_starlette_response_is_sent_as_it_is() -> None:
    response = StreamingResponse(iter([b"x"]))
    assert asgi_response(response) is response


class Point(BaseModel):
    x: int
    label: str


@pytest.mark.parametrize(
    ("value", "body"),
    [
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'),
        ("text", '"text"'),
        (None, "null"),
        (Point(x=1, label="p"), '{"x":1,"label":"p"}'),
    ],
)
def test_other_results_are_json_as_fastapi_sends_them(value: object, body: str) -> None:
    response = asgi_response(value)
    assert response.status_code == 200
    assert response.media_type == "application/json"
    assert response.body.decode() == body


def test_differences_from_azure_are_named() -> None:
    async def streaming(req: Request) -> StreamingResponse: ...

    def classic(req: func.HttpRequest) -> func.HttpResponse: ...

    functions = http_functions(streaming=streaming, classic=classic)
    notes = azure_differences([functions["streaming"]], [functions["classic"]], NO_SETTINGS)
    assert len(notes) == 2
    assert "streaming" in notes[0] and "PYTHON_ENABLE_INIT_INDEXING=1" in notes[0]
    assert notes[1].startswith("classic take func.HttpRequest")
    enabled = AppSettings({"PYTHON_ENABLE_INIT_INDEXING": "1"}, environ={})
    assert azure_differences([functions["streaming"]], [], enabled) == []


def mocked(path: str, headers: dict[str, str], chunks: list[bytes] | None = None) -> web.Request:
    """A request; with `chunks`, a body that has arrived in those chunks."""
    if chunks is None:
        return make_mocked_request("POST", path, headers=headers)
    loop = asyncio.get_running_loop()
    payload = StreamReader(BaseProtocol(loop), 2**30, loop=loop)
    for chunk in chunks:
        payload.feed_data(chunk)
    payload.feed_eof()
    return make_mocked_request("POST", path, headers=headers, payload=payload)


async def test_the_scope_is_the_request_as_the_function_should_see_it() -> None:
    request = mocked(
        "/api/things/a%20b?x=1&y=%C3%A9",
        {"Host": "forged.example", "X-Forwarded-For": "6.6.6.6", "X-Custom": "c"},
    )
    scope = asgi_scope(request, {"name": "a b"}, "https://app.example.net", "inv-1")
    assert (scope["type"], scope["method"], scope["scheme"]) == ("http", "POST", "https")
    assert scope["asgi"]["spec_version"] == "2.3"  # uvicorn's, as the worker runs it
    assert scope["path"] == "/api/things/a b"
    assert scope["raw_path"] == b"/api/things/a%20b"
    assert scope["query_string"] == b"x=1&y=%C3%A9"
    assert scope["path_params"] == {"name": "a b"}
    assert scope["server"] == ("app.example.net", 443)
    headers = dict(scope["headers"])
    assert headers[b"host"] == b"app.example.net"
    assert headers[b"x-forwarded-for"] != b"6.6.6.6"  # the socket's peer, never the caller's
    assert headers[b"x-custom"] == b"c"
    assert headers[b"x-ms-invocation-id"] == b"inv-1"
    request_seen = Request(scope)
    assert (request_seen.url.scheme, request_seen.url.netloc) == ("https", "app.example.net")
    assert request_seen.url.path == "/api/things/a b"
    assert dict(request_seen.query_params) == {"x": "1", "y": "é"}


async def drain(connection: AsgiConnection) -> tuple[bytes, list[dict[str, Any]]]:
    body, messages = b"", []
    while True:
        message = await connection.receive()
        messages.append(message)
        if message["type"] != "http.request":
            return body, messages
        body += message["body"]
        if not message["more_body"]:
            return body, messages


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=12), limit=st.integers(1, 2000)
)
def test_the_body_arrives_whole_or_is_refused_past_the_limit(
    chunks: list[bytes], limit: int
) -> None:
    async def scenario() -> None:
        request = mocked("/api/upload", {"Transfer-Encoding": "chunked"}, chunks)
        connection = AsgiConnection(request, HttpLimits(body_size=limit))
        body, messages = await drain(connection)
        sent = b"".join(chunks)
        if len(sent) > limit:
            assert messages[-1] == {"type": "http.disconnect"}
            assert connection.refusal is not None and connection.refusal.status == 413
            assert connection.gone
        else:
            assert body == sent
            assert connection.refusal is None and not connection.gone

    asyncio.run(scenario())


async def test_after_the_body_receive_waits_for_the_connection_to_end() -> None:
    connection = AsgiConnection(mocked("/api/x", {}, [b"hi"]), HttpLimits())
    assert await connection.receive() == {"type": "http.request", "body": b"hi", "more_body": False}
    waiting = asyncio.ensure_future(connection.receive())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    connection.end("the client closed the connection")
    assert await waiting == {"type": "http.disconnect"}
    assert connection.gone_reason == "the client closed the connection"


async def test_the_invoker_binds_the_request_while_inputs_read_the_http_request(
    invoker: Invoker,
) -> None:
    seen: dict[str, Any] = {}

    async def start(req: Request, client: str) -> JSONResponse:
        seen.update(request=req, client=client)
        return JSONResponse({})

    async def document(binding: BindingSpec, function: FunctionSpec, trigger: Any) -> str:
        seen["trigger"] = trigger
        return "document"

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    handler = app.generic_input_binding(arg_name="client", type="durableClient")(start)
    app.function_name("start")(app.route(route="start/{id}")(handler))
    (function,) = index_app(app, NO_SETTINGS)
    invoker.register_input("durableClient", lambda binding, function: "client-json")
    invoker.register_bound_input("durableClient", document)
    request = make_mocked_request("GET", "/api/start/7")
    http_request = to_function_request(request, b"", {"id": "7"})
    asgi = Request({"type": "http", "headers": [], "path_params": {"id": "7"}})
    invocation = await invoker.invoke(function, http_request, trigger_argument=asgi)
    assert seen["request"] is asgi
    assert seen["trigger"] is http_request
    assert seen["client"] == "document"
    assert isinstance(invocation.return_value, JSONResponse)


async def test_the_invocation_line_is_still_one_per_invocation(
    invoker: Invoker, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(req: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    function = http_functions(answer=answer)["answer"]
    asgi = Request({"type": "http", "headers": []})
    with caplog.at_level(logging.INFO, logger="devhost.invocation"):
        await invoker.invoke(function, None, trigger_argument=asgi, invocation_id="i-1")
    (line,) = [r.getMessage() for r in caplog.records if "i-1" in r.getMessage()]
    assert json.loads(line)["outcome"] == "Succeeded"
