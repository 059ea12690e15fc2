"""The benchmarks' HTTP load: requests as built on the wire, closed and open loops against a
real server, and an open loop that sends on schedule whatever a slow answer does."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from benchmarks.http_load import Target, closed_loop, open_loop

pytestmark = pytest.mark.unit


def test_requests_are_built_once_with_their_paths_and_bodies() -> None:
    target = Target(
        "POST",
        "http://127.0.0.1:8080/api/score/",
        {"Authorization": "Bearer t"},
        bodies=[b"{}", b"[1]"],
        paths=["fraud"],
    )
    first, second = target.requests()
    assert first == (
        b"POST /api/score/fraud HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer t\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    assert second.endswith(b"Content-Length: 3\r\n\r\n[1]")
    (get,) = Target("GET", "http://h/api/recommend/", paths=["u-1"]).requests()
    assert get == b"GET /api/recommend/u-1 HTTP/1.1\r\nHost: h\r\n\r\n"


class Server:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.stall_s = 0.0

    async def answer(self, request: web.Request) -> web.Response:
        self.seen.append(request.path + (await request.text()))
        if self.stall_s:
            stall, self.stall_s = self.stall_s, 0.0
            await asyncio.sleep(stall)
        if request.path == "/teapot":
            return web.Response(status=418, text="short and stout")
        return web.Response(text="ok")


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield state, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_closed_loop_keeps_its_clients_busy(server: tuple[Server, str]) -> None:
    state, url = server
    target = Target("POST", url + "/noop", bodies=[b"a", b"b"])
    result = await closed_loop(target, clients=4, seconds=0.3, server_pid=os.getpid())
    assert result.requests == len(state.seen) > 20
    assert set(state.seen) == {"/noopa", "/noopb"}
    figures = result.figures()
    assert figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert figures["server_cpu_us_per_request"] > 0  # the server is this process here


async def test_an_answer_not_expected_stops_the_load(server: tuple[Server, str]) -> None:
    _, url = server
    with pytest.raises(RuntimeError, match="answered 418"):
        await closed_loop(Target("GET", url + "/teapot"), clients=2, seconds=0.2)


async def test_an_open_loop_sends_on_schedule_past_a_slow_answer(
    server: tuple[Server, str],
) -> None:
    state, url = server
    calm = await open_loop(Target("GET", url + "/x"), rate=200, seconds=0.5)
    assert calm.requests == 100 and calm.latency_ms(0.5) < 50
    state.stall_s = 0.3
    stalled = await open_loop(Target("GET", url + "/x"), rate=200, seconds=0.5)
    # The first request waited on the server; the others were sent on time on connections of
    # their own, so the stall is in its latency (timed from its schedule) and not in theirs.
    assert stalled.requests == 100
    assert stalled.latencies_s[-1] >= 0.3 and stalled.latency_ms(0.5) < 50
