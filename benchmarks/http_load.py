"""HTTP load for the benchmarks, from one client process.

- `closed_loop`: N clients on keep-alive connections, each sending its next request as soon as
  the last is answered, for a throughput.
- `open_loop`: requests sent on a fixed schedule (`rate` a second) whatever the answers, each
  timed from its scheduled send time: a stall of the server delays the requests behind it,
  and they count it (no coordinated omission, as a closed loop would have).

The client is a minimal HTTP/1.1 one on asyncio's transports (requests built once, answers
read by `Content-Length`): about a fifth of aiohttp's client CPU per request, which on two
cores saturated a core before a bare aiohttp server did. Both loads report the client's own
CPU, so that a saturated client shows, and the server's when its process id is given (Linux
`/proc`), as CPU time per request: on a machine shared with other work that figure moves less
than the rates do.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """What each request sends: `url` with the next of `paths` after it, and the next of
    `bodies`, each taken in turn."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    bodies: Sequence[bytes] = (b"",)
    paths: Sequence[str] = ("",)
    expect: int = 200

    def requests(self) -> list[bytes]:
        """The requests on the wire, in turn."""
        address = urllib.parse.urlsplit(self.url)
        lines = [f"Host: {address.netloc}", *(f"{k}: {v}" for k, v in self.headers.items())]
        built = []
        for index in range(max(len(self.paths), len(self.bodies))):
            body = self.bodies[index % len(self.bodies)]
            length = [f"Content-Length: {len(body)}"] if body or self.method != "GET" else []
            target = address.path + self.paths[index % len(self.paths)]
            head = "\r\n".join([f"{self.method} {target} HTTP/1.1", *lines, *length, "", ""])
            built.append(head.encode() + body)
        return built


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    latencies_s: Sequence[float]  # sorted
    client_cpu_s: float
    server_cpu_s: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def latency_ms(self, quantile: float) -> float:
        ordered = self.latencies_s
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    @property
    def client_cores(self) -> float:
        return self.client_cpu_s / self.seconds

    @property
    def server_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return 1e6 * self.server_cpu_s / self.requests

    def __add__(self, other: LoadResult) -> LoadResult:
        """Two rounds of the same load as one."""
        server = (
            None
            if self.server_cpu_s is None or other.server_cpu_s is None
            else self.server_cpu_s + other.server_cpu_s
        )
        return LoadResult(
            self.requests + other.requests,
            self.seconds + other.seconds,
            sorted([*self.latencies_s, *other.latencies_s]),
            self.client_cpu_s + other.client_cpu_s,
            server,
        )

    def figures(self) -> dict[str, float]:
        """The details printed beside a figure."""
        found = {
            "p50_ms": round(self.latency_ms(0.50), 3),
            "p99_ms": round(self.latency_ms(0.99), 3),
            "max_ms": round(1000 * self.latencies_s[-1], 3),
            "requests": self.requests,
            "client_cores": round(self.client_cores, 2),
        }
        if self.server_us_per_request is not None:
            found["server_cpu_us_per_request"] = round(self.server_us_per_request, 1)
        return found


class ProcessCpu:
    """CPU seconds a process has used (all its threads), from `/proc/<pid>/stat`."""

    def __init__(self, pid: int | None) -> None:
        self.path = Path(f"/proc/{pid}/stat") if pid is not None else None
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def seconds(self) -> float | None:
        if self.path is None or not self.path.exists():
            return None
        # The command name (field 2) may hold spaces: count the fields after its ")".
        fields = self.path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime


class _Meter:
    def __init__(self, server_pid: int | None) -> None:
        self.server = ProcessCpu(server_pid)
        self.latencies: list[float] = []

    def __enter__(self) -> _Meter:
        self.started = time.perf_counter()
        self.client_started = time.process_time()
        self.server_started = self.server.seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.started
        self.client_cpu = time.process_time() - self.client_started
        server = self.server.seconds()
        self.server_cpu = (
            None if server is None or self.server_started is None else server - self.server_started
        )

    def result(self, seconds: float | None = None) -> LoadResult:
        if not self.latencies:
            raise RuntimeError("no request was answered")
        return LoadResult(
            len(self.latencies),
            seconds or self.elapsed,
            sorted(self.latencies),
            self.client_cpu,
            self.server_cpu,
        )


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; an answer is read by its length."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        fields = dict(line.split(":", 1) for line in head[1:])
        lengths = [v for k, v in fields.items() if k.strip().lower() == "content-length"]
        if not lengths and head[0].split(" ", 2)[1] in ("204", "304"):
            lengths = ["0"]
        if not lengths:
            self._fail(RuntimeError(f"an answer without Content-Length: {head[0]}"))
            return
        whole = end + 4 + int(lengths[0])
        if len(self.buffer) < whole:
            return
        body = bytes(self.buffer[end + 4 : whole])
        del self.buffer[:whole]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((int(head[0].split(" ", 2)[1]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, error: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)
        self.waiter = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Client:
    """Connections to the target's server, opened as needed and reused."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.requests = target.requests()
        address = urllib.parse.urlsplit(target.url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.idle: list[_Connection] = []
        self.all: list[_Connection] = []

    async def send(self, index: int) -> None:
        if self.idle:
            connection = self.idle.pop()
        else:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(_Connection, self.host, self.port)
            self.all.append(connection)
        status, body = await connection.exchange(self.requests[index % len(self.requests)])
        if status != self.target.expect:
            raise RuntimeError(f"{self.target.url} answered {status}: {body[:200]!r}")
        self.idle.append(connection)

    def close(self) -> None:
        for connection in self.all:
            connection.close()


async def closed_loop(
    target: Target, *, clients: int, seconds: float, server_pid: int | None = None
) -> LoadResult:
    """`clients` keep-alive clients sending back to back for `seconds`."""
    client = _Client(target)
    try:
        deadline = time.perf_counter() + seconds
        with _Meter(server_pid) as meter:

            async def one_client(first: int) -> None:
                sent = first
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    await client.send(sent)
                    meter.latencies.append(time.perf_counter() - started)
                    sent += clients

            await asyncio.gather(*(one_client(i) for i in range(clients)))
    finally:
        client.close()
    return meter.result()


async def open_loop(
    target: Target, *, rate: float, seconds: float, server_pid: int | None = None
) -> LoadResult:
    """`rate` requests a second for `seconds`, each sent at its scheduled time (or as soon as
    the client can, if it is late) and timed from then; a request finding no idle connection
    opens one, so a slow answer never holds the next request back."""
    count = max(1, round(rate * seconds))
    client = _Client(target)
    try:
        with _Meter(server_pid) as meter:

            async def one(index: int, scheduled: float) -> None:
                await client.send(index)
                meter.latencies.append(time.perf_counter() - scheduled)

            start = time.perf_counter() + 0.01
            tasks = []
            for index in range(count):
                scheduled = start + index / rate
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                tasks.append(asyncio.create_task(one(index, scheduled)))
            await asyncio.gather(*tasks)
    finally:
        client.close()
    return meter.result()
