"""The HTTP figures of `python -m benchmarks scoring`, each beside its baseline.

A devhost runs `benchmarks/apps/scoring` (the platform's serving path and two no-op functions)
on a copy of the data dir the models were trained in, so that the champions are registered
there; a bare aiohttp server with one no-op handler runs beside it. This process drives both
(`benchmarks.http_load`), every request with the same bearer token, from the devhost's local
issuer. In this order:

1. `alert_latency_p50_s`, `alert_latency_p99_s` (goal p99 <= 1 s), beside
   `bronze_latency_p50_s`/`p99_s` (baseline) for the same events: the simulator's traffic
   (`benchmarks.traffic`, all three contracts) posted to `/api/events` at 1,000 events/s in
   10 requests a second for `ALERT_SECONDS`; for each fraudulent payment that raised an alert,
   the time from its request's 202 to its alert document in the store (the alerts container's
   change feed, read every 20 ms), and to its row in bronze. This also gives the accounts and
   users online state for what follows.
2. `aiohttp_http_rps` (baseline) and `noop_http_rps` (goal >= 0.6 x), `noop_guarded_http_rps`,
   `score_http_rps` (goal >= 0.5 x noop), `health_http_rps`: 8 keep-alive clients, back to
   back, `seconds` each, in two rounds of half that with the targets taken in turn, so that
   a change in the machine's other load falls on all of them.
3. `noop_http_p99_ms` (baseline), `score_http_p99_ms` and `recommend_http_p99_ms` (goals
   <= 10 ms): an open loop of 500 requests/s for `seconds` each, timed from each request's
   scheduled send time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.http_load import LoadResult, ProcessCpu, Target, closed_loop, open_loop

APPS = Path(__file__).resolve().parent / "apps"
SCORING_APP = APPS / "scoring"
BARE_AIOHTTP = APPS / "bare_aiohttp.py"
CLIENTS = 8
OFFERED_RPS = 500
EVENTS_PER_S = 1000
POSTS_PER_S = 10
ALERT_SECONDS = 20.0
TRAFFIC_SEED = 3  # the accounts, cards and users the models were trained on
Emit = Callable[..., None]


@dataclass(frozen=True)
class Servers:
    devhost: Any  # tests.devhost_process.DevhostProcess
    bare_url: str
    bare_pid: int
    data_dir: Path
    headers: dict[str, str]

    def url(self, path: str) -> str:
        return str(self.devhost.url(path))

    @property
    def pid(self) -> int:
        return int(self.devhost.process.pid)


@contextmanager
def servers(trained_dir: Path, folder: Path) -> Iterator[Servers]:
    """A devhost on a copy of `trained_dir` and the bare aiohttp server, stopped afterwards."""
    from embedded.identity.local_issuer import LocalIssuer
    from shared.identity.roles import Role
    from tests.devhost_process import DevhostProcess, free_port

    data_dir = folder / "devhost-data"
    shutil.copytree(trained_dir, data_dir)
    port = free_port()
    bare = subprocess.Popen([sys.executable, str(BARE_AIOHTTP), str(port)])
    env = {"PLATFORM_DATA_DIR": str(data_dir), "DEVHOST_DATA_DIR": str(data_dir)}
    host = DevhostProcess(SCORING_APP, data_dir, env=env)
    try:
        host.wait_ready(60)
        token = LocalIssuer.open(data_dir).mint(
            roles=[Role.ANALYST, Role.WRITER], app="scoring-benchmark", ttl_s=3600
        )
        yield Servers(
            host,
            f"http://127.0.0.1:{port}/api/noop",
            bare.pid,
            data_dir,
            {"Authorization": f"Bearer {token}"},
        )
    finally:
        host.stop()
        bare.terminate()
        bare.wait(10)


def score_bodies(count: int) -> list[bytes]:
    """Payments of the simulator's accounts, one a request, as bare data (scored as of now)."""
    from benchmarks.traffic import Traffic, wall_clock

    events = Traffic(TRAFFIC_SEED + 1, mix=(1.0, 0.0, 0.0), labels=False).events(wall_clock())
    return [json.dumps(e["data"]).encode() for e in itertools.islice(events, count)]


def user_ids() -> list[str]:
    """The simulator's users (`Traffic`'s 300), who have online state once traffic has run."""
    return [f"u-{i:05d}" for i in range(300)]


def wait_quiet(pid: int, cores: float = 0.1, timeout_s: float = 60.0) -> None:
    """Wait until the process uses under `cores` of CPU over a second (its backlog done)."""
    cpu = ProcessCpu(pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = cpu.seconds()
        time.sleep(1.0)
        after = cpu.seconds()
        if before is None or after is None or after - before < cores:
            return


class AlertWatcher(threading.Thread):
    """Notes when each event's alert first shows in the alerts container's change feed."""

    def __init__(self, data_dir: Path, interval_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        from embedded.documents.store import DocumentStore, database_path
        from shared.models.alerts import ALERTS_CONTAINER

        self.container = DocumentStore(database_path(data_dir, "platform")).container(
            ALERTS_CONTAINER
        )
        self.position = self.container.store.change_feed_end(ALERTS_CONTAINER.name)
        self.interval_s = interval_s
        self.seen: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            page = self.container.changes(self.position, max_items=1000)
            now = time.perf_counter()
            for change in page.changes:
                self.seen.setdefault(str(change.document["event_id"]), now)
            self.position = page.continuation
            if len(page.changes) < 1000:
                time.sleep(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


async def post_traffic(url: str, headers: dict[str, str], seconds: float) -> dict[str, Any]:
    """The simulator's events at `EVENTS_PER_S`, `POSTS_PER_S` requests a second, each sent on
    schedule; when each event's request was answered 202, and which were fraudulent payments."""
    from benchmarks.traffic import Traffic, wall_clock

    events = Traffic(TRAFFIC_SEED, label_delay_scale=1.0).events(wall_clock())
    per_post = EVENTS_PER_S // POSTS_PER_S
    accepted: dict[str, float] = {}
    fraud: set[str] = set()
    batch = {"content-type": "application/cloudevents-batch+json", **headers}

    async def post(session: aiohttp.ClientSession, chunk: list[dict[str, Any]]) -> None:
        async with session.post(url, data=json.dumps(chunk).encode(), headers=batch) as response:
            answer = await response.json()
            if response.status != 202 or answer["accepted"] != len(chunk):
                raise RuntimeError(f"/api/events answered {response.status}: {answer}")
        answered = time.perf_counter()
        for event in chunk:
            accepted[event["id"]] = answered

    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        tasks = []
        for index in range(round(seconds * POSTS_PER_S)):
            await asyncio.sleep(max(0.0, start + index / POSTS_PER_S - time.perf_counter()))
            chunk = list(itertools.islice(events, per_post))
            fraud.update(
                e["id"]
                for e in chunk
                if e["type"] == "payment.transaction" and e.get("simlabel") != "legit"
            )
            tasks.append(asyncio.create_task(post(session, chunk)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"accepted": accepted, "fraud": fraud, "events_per_s": len(accepted) / elapsed}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def alert_latency(hosts: Servers, emit: Emit, progress: Callable[[str], None]) -> None:
    from benchmarks.ingest import BronzeWatcher

    alerts = AlertWatcher(hosts.data_dir)
    bronze = BronzeWatcher(hosts.data_dir / "lake")
    alerts.start()
    bronze.start()
    try:
        progress(f"alerts: {EVENTS_PER_S:,} events/s for {ALERT_SECONDS:g} s")
        posted = asyncio.run(post_traffic(hosts.url("/api/events"), hosts.headers, ALERT_SECONDS))
        accepted = posted["accepted"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(i in bronze.seen for i in accepted):
            time.sleep(0.1)
        time.sleep(2.0)  # an alert is written after its rows land
    finally:
        alerts.stop()
        bronze.stop()
    alerted = [i for i in posted["fraud"] if i in alerts.seen]
    if not alerted:
        raise RuntimeError("no fraudulent payment raised an alert")
    to_alert = [alerts.seen[i] - accepted[i] for i in alerted]
    to_bronze = [bronze.seen[i] - accepted[i] for i in alerted if i in bronze.seen]
    details = {
        "alerts": len(alerted),
        "fraud_payments": len(posted["fraud"]),
        "alerts_on_other_events": len(set(alerts.seen) - set(posted["fraud"])),
        "events_per_s": round(posted["events_per_s"]),
    }
    emit("bronze_latency_p50_s", _quantile(to_bronze, 0.5), "s", role="baseline")
    emit("bronze_latency_p99_s", _quantile(to_bronze, 0.99), "s", role="baseline")
    emit("alert_latency_p50_s", _quantile(to_alert, 0.5), "s", baseline="bronze_latency_p50_s")
    emit(
        "alert_latency_p99_s",
        _quantile(to_alert, 0.99),
        "s",
        baseline="bronze_latency_p99_s",
        goal="<= 1",
        **details,
    )


def _emit_rate(
    emit: Emit, metric: str, load: LoadResult, versus: tuple[str, LoadResult] | None, **extra: Any
) -> None:
    """A rate, with the ratio to the baseline figure `versus` (its name and its load)."""
    if versus is None:
        extra["role"] = "baseline"
    else:
        extra.update(baseline=versus[0], ratio=round(load.rps / versus[1].rps, 3))
    emit(metric, load.rps, "requests/s", **extra, clients=CLIENTS, **load.figures())


def _emit_p99(emit: Emit, metric: str, load: LoadResult, **extra: Any) -> None:
    figures = load.figures()
    emit(metric, figures.pop("p99_ms"), "ms", offered_rps=OFFERED_RPS, **extra, **figures)


def measure(
    trained_dir: Path,
    folder: Path,
    seconds: float,
    emit: Emit,
    progress: Callable[[str], None],
) -> None:
    """Every HTTP figure, on a devhost over the models trained in `trained_dir`."""
    with servers(trained_dir, folder) as hosts:
        auth = hosts.headers
        noop = Target("GET", hosts.url("/api/noop"), auth)
        bare = Target("GET", hosts.bare_url, auth)
        guarded = Target("GET", hosts.url("/api/noop/guarded"), auth)
        score = Target("POST", hosts.url("/api/score/fraud"), auth, score_bodies(1000))
        recommend = Target("GET", hosts.url("/api/recommend/"), auth, paths=user_ids())
        health = Target("GET", hosts.url("/api/health"))
        from benchmarks.ingest import BronzeWatcher, warm_up

        watcher = BronzeWatcher(hosts.data_dir / "lake")
        watcher.start()
        try:  # the bronze tables are created once in a lake's life, and not measured
            warm_up(hosts.url("/api/events"), "", watcher)
        finally:
            watcher.stop()
        for target in (noop, bare, guarded, score, recommend, health):
            asyncio.run(closed_loop(target, clients=CLIENTS, seconds=1.0))
        alert_latency(hosts, emit, progress)
        wait_quiet(hosts.pid)

        progress(f"throughput: {CLIENTS} clients, {seconds:g} s a target")
        rates: dict[str, LoadResult] = {}
        for _ in range(2):
            for name, target, pid in (
                ("aiohttp", bare, hosts.bare_pid),
                ("noop", noop, hosts.pid),
                ("guarded", guarded, hosts.pid),
                ("score", score, hosts.pid),
                ("health", health, hosts.pid),
            ):
                load = asyncio.run(
                    closed_loop(target, clients=CLIENTS, seconds=seconds / 2, server_pid=pid)
                )
                rates[name] = rates[name] + load if name in rates else load
                progress(f"{name}: {load.rps:,.0f} requests/s")
        _emit_rate(emit, "aiohttp_http_rps", rates["aiohttp"], None)
        noop_rate = ("noop_http_rps", rates["noop"])
        _emit_rate(
            emit,
            "noop_http_rps",
            rates["noop"],
            ("aiohttp_http_rps", rates["aiohttp"]),
            goal=">= 0.6",
        )
        _emit_rate(emit, "noop_guarded_http_rps", rates["guarded"], noop_rate)
        _emit_rate(emit, "score_http_rps", rates["score"], noop_rate, goal=">= 0.5")
        _emit_rate(emit, "health_http_rps", rates["health"], noop_rate)

        progress(f"latency: {OFFERED_RPS} requests/s offered, {seconds:g} s a target")
        latency = {}
        for name, target in (("noop", noop), ("score", score), ("recommend", recommend)):
            latency[name] = asyncio.run(
                open_loop(target, rate=OFFERED_RPS, seconds=seconds, server_pid=hosts.pid)
            )
            progress(f"{name}: p99 {latency[name].latency_ms(0.99):.2f} ms")
        _emit_p99(emit, "noop_http_p99_ms", latency["noop"], role="baseline")
        for name in ("score", "recommend"):
            _emit_p99(
                emit,
                f"{name}_http_p99_ms",
                latency[name],
                baseline="noop_http_p99_ms",
                goal="<= 10",
            )
