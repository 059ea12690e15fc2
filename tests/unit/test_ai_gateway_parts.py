"""The gateway's small parts: SSE framing and keep-alives, the checks of an app's body, and the
FastAPI types every route is served through."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import azure.functions as func
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.http_types import (
    fastapi_signature,
    joined_headers,
    takes_fastapi_request,
    to_function_request,
    to_response,
)
from shared.ai.gateway_calls import BadCall, chat_call, embeddings_call, read_json
from shared.ai.sse import DONE, TICK, event, with_keep_alive
from tests.functions import fastapi_request

pytestmark = pytest.mark.unit

MESSAGES = [{"role": "user", "content": "hi"}]


def test_an_event_is_one_data_line_whatever_the_text() -> None:
    framed = event({"text": "line one\nline two\r\n\n data: [DONE]"})
    assert framed.startswith(b"data: ") and framed.endswith(b"\n\n")
    assert framed.count(b"\n") == 2
    assert json.loads(framed[6:]) == {"text": "line one\nline two\r\n\n data: [DONE]"}
    assert DONE == b"data: [DONE]\n\n"


async def test_keep_alives_come_while_the_source_is_quiet_and_never_cancel_it() -> None:
    produced: list[str] = []

    async def slow() -> AsyncIterator[str]:
        for word in ("a", "b"):
            await asyncio.sleep(0.12)
            produced.append(word)
            yield word

    seen = [item async for item in with_keep_alive(slow(), 0.05)]
    words = [item for item in seen if item is not TICK]
    assert words == ["a", "b"] and produced == ["a", "b"]
    assert seen.count(TICK) >= 2


async def test_a_consumer_that_stops_cancels_the_pending_read() -> None:
    cancelled = asyncio.Event()

    async def forever() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(3600)
            yield 2
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stream = with_keep_alive(forever(), 0.01)
    assert await anext(stream) == 1
    assert await anext(stream) is TICK
    await stream.aclose()
    assert cancelled.is_set()


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_any_json_body_is_admitted_or_refused_with_a_bad_call(body: Any) -> None:
    raw = json.dumps(body).encode()
    for check in (chat_call, embeddings_call):
        try:
            check(read_json(raw))
        except BadCall as error:
            assert str(error)


def test_the_capped_max_tokens_replaces_what_the_app_asked_for() -> None:
    call = chat_call({"messages": MESSAGES, "max_completion_tokens": 9000, "temperature": 0})
    sent = call.upstream_body(4096)
    assert sent["max_completion_tokens"] == 4096 and "max_tokens" not in sent
    assert sent["temperature"] == 0 and call.prompt_tokens > 0
    assert chat_call({"messages": MESSAGES}).upstream_body(100)["max_tokens"] == 100


@pytest.mark.parametrize(
    "raw", [b"", b"   ", b"[1]", b'"text"', b"{" * 100_000, b'{"a": Infinity}', b"\xff\xfe"]
)
def test_bodies_that_are_not_one_json_object_are_refused(raw: bytes) -> None:
    with pytest.raises(BadCall):
        read_json(raw)


def test_embeddings_inputs_are_checked() -> None:
    assert embeddings_call({"input": "one text"}).single
    assert embeddings_call({"input": ["a", "b"], "encoding_format": "base64"}).base64
    for body in ({"input": []}, {"input": [1, 2]}, {"input": [""]}, {"input": ["x"] * 3000}):
        with pytest.raises(BadCall):
            embeddings_call(body)


async def test_a_fastapi_request_becomes_the_function_request_a_classic_route_expects() -> None:
    classic = func.HttpRequest(
        "POST",
        "http://localhost/api/things/7?a=1&b=2",
        headers={"X-Trace": "one", "content-type": "application/json"},
        route_params={"id": "7"},
        body=b'{"x": 1}',
    )
    req = fastapi_request(classic)
    rebuilt = await to_function_request(req, joined_headers(req))
    assert rebuilt.method == "POST" and rebuilt.get_body() == b'{"x": 1}'
    assert rebuilt.params == {"a": "1", "b": "2"} and rebuilt.route_params == {"id": "7"}
    assert rebuilt.headers["x-trace"] == "one"


def test_a_function_response_goes_back_as_a_fastapi_response() -> None:
    answer = to_response(
        func.HttpResponse("hé", status_code=418, mimetype="text/plain", headers={"X-A": "1"})
    )
    assert answer.status_code == 418 and answer.body == "hé".encode()
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["x-a"] == "1"
    assert to_response(None).status_code == 204
    with pytest.raises(TypeError):
        to_response({"a": 1})


def test_every_route_is_indexed_with_the_fastapi_types() -> None:
    from azurefunctions.extensions.http.fastapi import Request, Response

    import function_app

    built = [builder.build() for builder in function_app.app._function_builders]
    routes = [  # (get_functions() may run once per app: other tests index it too)
        f.get_user_function()
        for f in built
        if any(b.type == "httpTrigger" for b in f.get_bindings())
    ]
    assert len(routes) > 20
    for route in routes:
        annotations = route.__annotations__
        assert annotations["req"] is Request and annotations["return"] is Response, route
        assert takes_fastapi_request(route, "req")
        assert fastapi_signature(route, "req").parameters["req"].annotation is Request
