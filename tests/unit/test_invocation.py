"""The invoker: ids, where sync and async functions run, the one line each invocation logs (made
through the record factory, so a scrubber sees it), and a function indexed again."""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest

from devhost.appsettings import AppSettings
from devhost.indexing import FunctionSpec, index_app
from devhost.invocation import FunctionFailed, Invoker, new_invocation_id

pytestmark = pytest.mark.unit

REQUEST = contextvars.ContextVar("request", default="none")


def test_invocation_ids_are_distinct_version_4_uuids() -> None:
    ids = [new_invocation_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:1000]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def functions(register: Callable[[func.FunctionApp], None]) -> dict[str, FunctionSpec]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    register(app)
    return {f.name: f for f in index_app(app, AppSettings({}, environ={}))}


def http_app(app: func.FunctionApp) -> None:
    @app.route(route="sync")
    def sync_route(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"{threading.current_thread().name} {REQUEST.get()}")

    @app.route(route="async")
    async def async_route(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(threading.current_thread().name)

    @app.route(route="fails")
    def fails(req: func.HttpRequest) -> func.HttpResponse:
        raise ValueError("bad")


def request() -> func.HttpRequest:
    return func.HttpRequest("GET", "http://localhost/api/x", body=b"")


async def test_sync_functions_run_on_the_threads_with_the_callers_context(
    invoker: Invoker,
) -> None:
    found = functions(http_app)
    REQUEST.set("r-1")
    sync = await invoker.invoke(found["sync_route"], request())
    thread, context = sync.return_value.get_body().decode().split()
    assert thread.startswith("func_") and context == "r-1"
    on_loop = await invoker.invoke(found["async_route"], request())
    assert on_loop.return_value.get_body().decode() == threading.current_thread().name


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """The invocation records, as a record factory (the platform's scrubber is one) made them."""
    made: list[logging.LogRecord] = []
    base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if record.name == "devhost.invocation":
            made.append(record)
        return record

    logging.setLogRecordFactory(factory)
    level = logging.getLogger("devhost.invocation").level
    logging.getLogger("devhost.invocation").setLevel(logging.INFO)
    yield made
    logging.setLogRecordFactory(base)
    logging.getLogger("devhost.invocation").setLevel(level)


async def test_each_invocation_logs_one_line_through_the_record_factory(
    invoker: Invoker, records: list[logging.LogRecord]
) -> None:
    found = functions(http_app)
    done = await invoker.invoke(found["sync_route"], request(), log_fields={"path": "/api/sync"})
    with pytest.raises(FunctionFailed):
        await invoker.invoke(found["fails"], request(), invocation_id="given-id")
    lines = [json.loads(r.getMessage()) for r in records if r.levelno == logging.INFO]
    assert [line["invocation_id"] for line in lines] == [done.invocation_id, "given-id"]
    assert lines[0] == {
        "event": "invocation",
        "function": "sync_route",
        "trigger": "httpTrigger",
        "invocation_id": done.invocation_id,
        "duration_ms": lines[0]["duration_ms"],
        "outcome": "Succeeded",
        "path": "/api/sync",
    }
    assert (lines[1]["outcome"], lines[1]["error"]) == ("Failed", "ValueError: bad")


async def test_no_line_below_the_info_level(
    invoker: Invoker, records: list[logging.LogRecord]
) -> None:
    logging.getLogger("devhost.invocation").setLevel(logging.WARNING)
    await invoker.invoke(functions(http_app)["async_route"], request())
    assert records == []


async def test_a_function_indexed_again_under_its_name_is_called_with_its_own_bindings(
    invoker: Invoker,
) -> None:
    def first(app: func.FunctionApp) -> None:
        @app.route(route="f")
        def same(req: func.HttpRequest) -> str:
            return "first"

    def second(app: func.FunctionApp) -> None:
        @app.route(route="f", trigger_arg_name="request")
        def same(request: func.HttpRequest, context: func.Context) -> str:
            return f"second {context.function_name}"

    assert (await invoker.invoke(functions(first)["same"], request())).result == "first"
    again = await invoker.invoke(functions(second)["same"], request())
    assert again.result == "second same"
