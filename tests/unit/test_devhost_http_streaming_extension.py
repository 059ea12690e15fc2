"""The HTTP extension serving HTTP streams in process, over real loopback HTTP: chunks as the
function yields them, request bodies as they arrive, callers that leave, failures, shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import azure.functions as func
import pytest
from aiohttp import web
from azurefunctions.extensions.http.fastapi import (
    PlainTextResponse,
    Request,
    Response,
    StreamingResponse,
)
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from devhost.appsettings import AppSettings
from devhost.extension import HostContext
from devhost.hostconfig import HostConfig
from devhost.http.extension import HttpExtension
from devhost.indexing import index_app
from devhost.invocation import Invoker
from devhost.keys import HostKeys

pytestmark = pytest.mark.unit

PROMPTLY_S = 2.0  # far longer than the host needs to notice a caller leaving (about 0.1 s)


@dataclass
class Served:
    extension: HttpExtension
    url: str
    port: int


ServeApp = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path, invoker: Invoker) -> AsyncIterator[ServeApp]:
    """Serve an app's HTTP functions through the devhost's HTTP extension, on loopback."""
    runners: list[web.AppRunner] = []

    async def start(app: func.FunctionApp, **settings: str) -> Served:
        context = HostContext(
            script_root=tmp_path,
            data_dir=tmp_path / "data",
            settings=AppSettings({"PYTHON_ENABLE_INIT_INDEXING": "1", **settings}, environ={}),
            host_config=HostConfig(),
            invoker=invoker,
            keys=HostKeys(master="master", host={"default": "host"}),
            base_url="",
            log=logging.getLogger("devhost.test"),
        )
        extension = HttpExtension(context, index_app(app, context.settings))
        web_app = web.Application()
        web_app.add_routes(extension.routes())
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        context.base_url = f"http://127.0.0.1:{port}"
        return Served(extension, context.base_url + "/api", port)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def new_app() -> func.FunctionApp:
    return func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


async def within(event: asyncio.Event, seconds: float = PROMPTLY_S) -> float:
    started = time.monotonic()
    await asyncio.wait_for(event.wait(), seconds)
    return time.monotonic() - started


async def test_headers_then_each_chunk_as_the_function_yields_it(
    serve: ServeApp, client: aiohttp.ClientSession
) -> None:
    app = new_app()
    first_event, second_event = asyncio.Event(), asyncio.Event()

    @app.route(route="ticks")
    async def ticks(req: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            await first_event.wait()
            yield "data: 1\n\n"
            await second_event.wait()
            yield "data: 2\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    served = await serve(app)
    async with client.get(served.url + "/ticks") as response:
        # The status line is out before the first event exists.
        assert response.status == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["x-ms-invocation-id"]
        read = asyncio.ensure_future(response.content.readany())
        await asyncio.sleep(0.1)
        assert not read.done()
        first_event.set()
        assert await read == b"data: 1\n\n"  # while the second does not exist yet
        second_event.set()
        assert await response.content.read() == b"data: 2\n\n"


async def test_response_types_and_plain_values(
    serve: ServeApp, client: aiohttp.ClientSession
) -> None:
    app = new_app()
    background = asyncio.Event()

    @app.route(route="plain", methods=["GET", "HEAD"])
    def plain(req: Request) -> PlainTextResponse:
        return PlainTextResponse(
            "plain",
            status_code=202,
            headers={"x-a": "1"},
            background=BackgroundTask(background.set),
        )

    @app.route(route="value")
    async def value(req: Request) -> list[int]:
        return [1, 2]

    @app.route(route="classic")
    async def classic(req: Request) -> func.HttpResponse:
        return func.HttpResponse("classic", status_code=203)

    @app.route(route="empty")
    async def empty(req: Request) -> Response:
        return Response(status_code=204)

    served = await serve(app)
    async with client.get(served.url + "/plain") as response:
        assert (response.status, await response.text()) == (202, "plain")
        assert response.headers["x-a"] == "1"
        assert response.headers["content-length"] == "5"
    await within(background)
    async with client.head(served.url + "/plain") as response:
        assert (response.status, await response.read()) == (202, b"")
    async with client.get(served.url + "/value") as response:
        assert (response.headers["content-type"], await response.text()) == (
            "application/json",
            "[1,2]",
        )
    async with client.get(served.url + "/classic") as response:
        assert (response.status, await response.text()) == (203, "classic")
    async with client.get(served.url + "/empty") as response:
        assert (response.status, await response.read()) == (204, b"")


async def test_the_body_streams_in_within_the_size_limit(
    serve: ServeApp, client: aiohttp.ClientSession
) -> None:
    app = new_app()
    seen: list[object] = []
    arrived = asyncio.Event()

    @app.route(route="upload", methods=["POST"])
    async def upload(req: Request) -> PlainTextResponse:
        size = 0
        try:
            async for chunk in req.stream():
                size += len(chunk)
                arrived.set()
        except ClientDisconnect as gone:
            seen.append(gone)
            raise
        return PlainTextResponse(str(size))

    served = await serve(app, FUNCTIONS_REQUEST_BODY_SIZE_LIMIT="10000")
    more = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 4000
        await more.wait()  # the function has the first chunk before the rest is sent
        yield b"x" * 4000

    sending = asyncio.ensure_future(client.post(served.url + "/upload", data=body()))
    await within(arrived)
    more.set()
    async with await sending as response:
        assert (response.status, await response.text()) == (200, "8000")

    async def too_much() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 4000

    async with client.post(served.url + "/upload", data=too_much()) as response:
        assert response.status == 413
        assert "10000 bytes" in (await response.json())["error"]
    assert len(seen) == 1  # the function saw the rest of the body refused as a disconnect
    async with client.post(served.url + "/upload", data=b"x" * 10_001) as response:
        assert response.status == 413  # declared: refused before the function runs
    assert len(seen) == 1


async def test_a_stalled_body_gets_408(serve: ServeApp) -> None:
    app = new_app()

    @app.route(route="upload", methods=["POST"])
    async def upload(req: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await req.body())))

    served = await serve(app, DEVHOST_HTTP_BODY_TIMEOUT_S="0.2")

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc")
            received = b""
            while b"received" not in received and (chunk := sock.recv(65536)):
                received += chunk
            return received

    answer = await asyncio.to_thread(talk)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"3 bytes received" in answer


async def test_a_caller_that_leaves_cancels_the_upstream_call_and_closes_the_generator(
    serve: ServeApp, client: aiohttp.ClientSession
) -> None:
    app = new_app()
    events: list[str] = []
    closed = asyncio.Event()

    @app.route(route="endless")
    async def endless(req: Request) -> StreamingResponse:
        async def answer() -> AsyncIterator[bytes]:
            try:
                yield b"data: first\n\n"
                await asyncio.sleep(3600)  # an upstream call that never answers
                yield b"never"
            except asyncio.CancelledError:
                events.append("cancelled")
                raise
            finally:
                events.append("closed")
                closed.set()

        return StreamingResponse(answer(), media_type="text/event-stream")

    served = await serve(app)
    response = await client.get(served.url + "/endless")
    assert await response.content.readany() == b"data: first\n\n"
    response.close()  # the caller goes away while the function awaits upstream
    assert await within(closed) < PROMPTLY_S
    assert events == ["cancelled", "closed"]


async def test_a_caller_that_leaves_closes_a_sync_generator(
    serve: ServeApp, client: aiohttp.ClientSession
) -> None:
    app = new_app()
    closed = threading.Event()

    @app.route(route="ticks")
    def ticks(req: Request) -> StreamingResponse:
        def lines() -> Iterator[bytes]:
            try:
                while True:
                    time.sleep(0.02)
                    yield b"tick\n"
            finally:
                closed.set()

        return StreamingResponse(lines())

    served = await serve(app)
    response = await client.get(served.url + "/ticks")
    assert (await response.content.readany()).startswith(b"tick\n")
    response.close()
    assert await asyncio.to_thread(closed.wait, PROMPTLY_S)


async def test_failures_before_and_after_the_first_byte(
    serve: ServeApp, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    app = new_app()

    @app.route(route="early")
    async def early(req: Request) -> StreamingResponse:
        raise RuntimeError("no answer")

    @app.route(route="midway")
    async def midway(req: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: one\n\n"
            raise RuntimeError("the upstream broke")

        return StreamingResponse(events())

    served = await serve(app)
    async with client.get(served.url + "/early") as response:
        assert response.status == 500
        body = await response.json()
        assert body["invocationId"] == response.headers["x-ms-invocation-id"]
    with caplog.at_level(logging.INFO, logger="devhost.http"):
        async with client.get(served.url + "/midway") as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()  # cut short: never a complete-looking body
    failed = [r for r in caplog.records if '"outcome": "Failed"' in r.getMessage()]
    assert len(failed) == 1 and "the upstream broke" in failed[0].getMessage()


async def test_stopping_the_host_ends_open_streams(
    serve: ServeApp, client: aiohttp.ClientSession
) -> None:
    app = new_app()
    closed = asyncio.Event()

    @app.route(route="endless")
    async def endless(req: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"data: tick\n\n"
                    await asyncio.sleep(0.02)
            finally:
                closed.set()

        return StreamingResponse(events())

    served = await serve(app)
    async with client.get(served.url + "/endless") as response:
        assert await response.content.readany()
        await served.extension.stop()
        await within(closed)
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_a_function_key_is_required_as_for_other_functions(
    serve: ServeApp, client: aiohttp.ClientSession
) -> None:
    app = new_app()

    @app.route(route="secure", auth_level=func.AuthLevel.FUNCTION)
    async def secure(req: Request) -> PlainTextResponse:
        return PlainTextResponse("in")

    served = await serve(app, DEVHOST_ENFORCE_AUTH="true")
    async with client.get(served.url + "/secure") as response:
        assert response.status == 401
    async with client.get(served.url + "/secure", headers={"x-functions-key": "host"}) as response:
        assert (response.status, await response.text()) == (200, "in")
