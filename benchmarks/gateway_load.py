"""The load of `python -m benchmarks gateway`: a loopback OpenAI-compatible upstream, the
servers, and a client that times whole and streamed chat completions.

- **The upstream** (`python -m benchmarks.gateway_load PORT`, in a process of its own so that it
  shares no GIL with the client) is an aiohttp server speaking OpenAI's wire format for
  `POST /v1/chat/completions`: a reply of `max_tokens` words (16 when the body names none),
  whole or streamed as the SDK expects it (a role chunk, a chunk per word, a finish chunk, the
  usage chunk when `stream_options.include_usage` asks for it, `[DONE]`), at once. It counts
  tokens as `tests.fakes.openai_server` does (words), and `GET /usage` answers the sums of the
  usage it has reported. `FakeOpenAI` itself is no fair upstream here: its `http.server`
  writes a response's headers and body in two sends with Nagle's algorithm on, so every answer
  waits out the client's delayed ACK (44 ms a request on loopback).
- **The client** (`timed_calls`, for an `http_load.Target`) is aiohttp's, `callers` tasks on
  keep-alive connections, each sending its next request as soon as the last is answered; it
  times each whole answer and, streamed, its first `data:` event. The same client and bodies
  go to the gateway and straight to the upstream, so what it costs falls on both.
- **The servers** (`servers`): the upstream, a devhost on the platform's own `function_app.py`
  with the gateway pointed at the upstream (as `tests/integration/test_ai_gateway_devhost.py`
  starts it; its timers off), and a devhost on `benchmarks/apps/noop` for the baseline. Keys
  are issued over `POST /api/ai/apps` as the local developer, an admin on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import requests
from aiohttp import web

from benchmarks.http_load import LoadResult, ProcessCpu, Target
from tests.fakes.openai_server import API_KEY, CREATED, prompt_tokens

DEFAULT_REPLY_WORDS = 16
USAGE_PATH = "/usage"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOOP_APP = Path(__file__).resolve().parent / "apps" / "noop"
CHAT_MODEL = "gpt-4o-mini"
CHAT_PATH = "/api/openai/v1/chat/completions"
TIMERS = (
    "hourly_pipeline_run",
    "nightly_table_maintenance",
    "pipeline_run_reaper",
    "compact_bronze",
    "verify_audit_trail",
    "monitor_models",
    "train_models",
)
OPEN_LIMITS = {"tokens_per_minute": 10**9, "requests_per_minute": 10**6, "token_quota": 10**12}


def reply_words(body: Mapping[str, Any]) -> int:
    """How many words the upstream answers `body` with."""
    asked = body.get("max_tokens")
    return asked if isinstance(asked, int) and asked > 0 else DEFAULT_REPLY_WORDS


class Upstream:
    """The loopback upstream's handlers, and the usage it has reported."""

    def __init__(self) -> None:
        self.reported = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self.ids = 0

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get(USAGE_PATH, self.usage)
        return app

    async def usage(self, request: web.Request) -> web.Response:
        return web.json_response(self.reported)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response(
                {"error": {"message": "invalid key", "code": "401"}}, status=401
            )
        body = await request.json()
        self.ids += 1
        words = [f"w{i}" for i in range(reply_words(body))]
        usage = {"prompt_tokens": prompt_tokens(body), "completion_tokens": len(words)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        head = {"id": f"chatcmpl-bench-{self.ids}", "created": CREATED, "model": body["model"]}
        if not body.get("stream"):
            self._count(usage)
            message = {"role": "assistant", "content": " ".join(words), "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            whole = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            return web.json_response(whole, dumps=_dumps)
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and options.get("include_usage") is True
        head = {
            **head,
            "object": "chat.completion.chunk",
            **({"usage": None} if with_usage else {}),
        }
        deltas: list[tuple[dict[str, Any], str | None]] = [
            ({"role": "assistant", "content": ""}, None)
        ]
        deltas += [({"content": w if i == 0 else f" {w}"}, None) for i, w in enumerate(words)]
        deltas.append(({}, "stop"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for delta, finish in deltas:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            await response.write(_event({**head, "choices": [choice]}))
        if with_usage:
            self._count(usage)
            await response.write(_event({**head, "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _count(self, usage: Mapping[str, int]) -> None:
        self.reported["requests"] += 1
        self.reported["prompt_tokens"] += usage["prompt_tokens"]
        self.reported["completion_tokens"] += usage["completion_tokens"]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _event(data: Any) -> bytes:
    return f"data: {_dumps(data)}\n\n".encode()


def chat_body(
    words: int = DEFAULT_REPLY_WORDS,
    *,
    stream: bool = False,
    include_usage: bool = False,
    model: str,
) -> bytes:
    """A chat completions request asking for a reply of `words` words (streamed, and with the
    usage chunk, when asked)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Summarise yesterday's payments in a line"}],
        "max_tokens": words,
    }
    if stream:
        body["stream"] = True
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


@dataclass(frozen=True)
class Timed:
    """A load's answers: `whole` times each answer to its end, `first_event` (streamed) to
    its first `data:` event; the server's CPU is `whole`'s."""

    whole: LoadResult
    first_event: LoadResult | None

    def __add__(self, other: Timed) -> Timed:
        """Two rounds of the same load as one."""
        first = self.first_event
        if first is not None and other.first_event is not None:
            first = first + other.first_event
        return Timed(self.whole + other.whole, first)


async def timed_calls(
    target: Target, *, callers: int, count: int, server_pid: int | None = None
) -> Timed:
    """`count` requests of `target` (its bodies in turn) from `callers` concurrent callers,
    back to back; each answer must have the status expected, and a stream end with `[DONE]`."""
    cpu = ProcessCpu(server_pid)
    whole: list[float] = []
    first: list[float] = []
    bodies = target.bodies
    connector = aiohttp.TCPConnector(limit=callers)
    async with aiohttp.ClientSession(connector=connector, headers=dict(target.headers)) as session:

        async def call(index: int) -> None:
            started = time.perf_counter()
            body = bodies[index % len(bodies)]
            async with session.request(target.method, target.url, data=body) as response:
                if response.content_type != "text/event-stream":
                    last = await response.read()
                else:
                    first_event = None
                    last = b""
                    async for line in response.content:
                        if first_event is None and line.startswith(b"data: "):
                            first_event = time.perf_counter()
                        last = line if line.strip() else last
                    if first_event is None or last.strip() != b"data: [DONE]":
                        raise RuntimeError(f"{target.url}: a stream ended with {last[:200]!r}")
                    first.append(first_event - started)
                if response.status != target.expect:
                    raise RuntimeError(f"{target.url} answered {response.status}: {last[:200]!r}")
            whole.append(time.perf_counter() - started)

        async def caller(offset: int) -> None:
            for index in range(offset, count, callers):
                await call(index)

        clock, client_cpu, server_cpu = time.perf_counter(), time.process_time(), cpu.seconds()
        await asyncio.gather(*(caller(i) for i in range(callers)))
        seconds, client_cpu = time.perf_counter() - clock, time.process_time() - client_cpu
    server_after = cpu.seconds()
    server = None if server_cpu is None or server_after is None else server_after - server_cpu
    result = LoadResult(len(whole), seconds, sorted(whole), client_cpu, server)
    streamed = LoadResult(len(first), seconds, sorted(first), client_cpu, server) if first else None
    return Timed(result, streamed)


async def reported_usage(upstream_url: str) -> dict[str, int]:
    """The sums of the usage the upstream has reported so far."""
    async with aiohttp.ClientSession() as session, session.get(upstream_url + USAGE_PATH) as answer:
        found: dict[str, int] = await answer.json()
        return found


@dataclass(frozen=True)
class Servers:
    gateway: Any  # tests.devhost_process.DevhostProcess
    noop: Any
    upstream_url: str  # the upstream's root
    upstream_pid: int

    def gateway_url(self, path: str) -> str:
        return str(self.gateway.url(path))


def _wait_answering(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer (the process exited with {process.poll()})")


@contextmanager
def servers(folder: Path) -> Iterator[Servers]:
    """The loopback upstream, the platform's devhost pointed at it, and the no-op devhost."""
    from tests.devhost_process import DevhostProcess, free_port

    port = free_port()
    path = os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])
    upstream = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.gateway_load", str(port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": path},
    )
    upstream_url = f"http://127.0.0.1:{port}"
    env = {
        "PLATFORM_DATA_DIR": str(folder / "platform"),
        "OPENAI_BASE_URL": upstream_url + "/v1",
        "OPENAI_API_KEY": API_KEY,
        "AI_CHAT_MODEL": CHAT_MODEL,
        **{f"AzureWebJobs.{name}.Disabled": "true" for name in TIMERS},
    }
    hosts = []
    try:
        _wait_answering(upstream_url + USAGE_PATH, upstream)
        hosts.append(DevhostProcess(PROJECT_ROOT, folder / "platform", env=env))
        noop_env = {"PLATFORM_DATA_DIR": str(folder / "noop")}
        hosts.append(DevhostProcess(NOOP_APP, folder / "noop", env=noop_env))
        for host in hosts:
            host.wait_ready(120)
        yield Servers(hosts[0], hosts[1], upstream_url, upstream.pid)
    finally:
        for host in hosts:
            host.stop()
        upstream.terminate()
        upstream.wait(10)


def issue_key(hosts: Servers, name: str) -> tuple[str, str]:
    """A new app of the gateway (as the local developer, an admin on loopback): id and key."""
    body: dict[str, Any] = {"name": name, "limits": OPEN_LIMITS}
    answer = requests.post(hosts.gateway_url("/api/ai/apps"), json=body, timeout=60)
    if answer.status_code != 201:
        raise RuntimeError(f"POST /api/ai/apps answered {answer.status_code}: {answer.text}")
    return str(answer.json()["app"]["id"]), str(answer.json()["key"])


def main(port: int) -> None:
    web.run_app(Upstream().application(), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
