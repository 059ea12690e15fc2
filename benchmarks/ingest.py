"""Ingestion throughput: `python -m benchmarks ingest` prints JSON lines, one per figure.

- `decode_events_per_s` (baseline): the typed msgspec decode of the same bytes, one core.
- `ingest_function_events_per_s`: the `ingest` function's body, called as the worker calls it
  with batches of 1,000 `func.EventHubEvent`s, from decode to committed Delta, one core.
- `e2e_events_per_s`, `e2e_latency_p50_s`, `e2e_latency_p99_s`: HTTP posts to a devhost running
  the app, until each event is visible in bronze.

Ratios to the baseline from the same run are given with each figure (goals: ingest >= 0.25,
e2e >= 0.1 with p99 <= 2 s). `--quick` runs smaller counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.report import Report

REPORT = Report("ingest", digits=4)
emit = REPORT.emit
progress = REPORT.progress

BATCH = 1000


@contextmanager
def one_core() -> Iterator[None]:
    """Pin the process (and the threads it starts) to one CPU while measuring."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def payment_bodies(count: int, seed: int = 1) -> list[bytes]:
    from benchmarks.traffic import Traffic, simulated_clock

    traffic = Traffic(seed, fraud_rate=0.0, mix=(1.0, 0.0, 0.0), labels=False)
    clock = simulated_clock(dt.datetime(2024, 5, 1, tzinfo=dt.UTC), 1000.0)
    events = itertools.islice(traffic.events(clock), count)
    return [json.dumps(e, separators=(",", ":")).encode() for e in events]


def best_rate(run: Callable[[], int], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        rates.append(count / (time.perf_counter() - started))
    return max(rates)


def hub_batches(bodies: list[bytes], first_sequence: int) -> list[list[Any]]:
    """Batches of `func.EventHubEvent` as the worker builds them for cardinality many."""
    import azure.functions as func
    from azure.functions import meta

    context = json.dumps(
        {
            "FullyQualifiedNamespace": "local",
            "EventHubName": "events",
            "ConsumerGroup": "$Default",
            "PartitionId": "0",
        }
    )
    enqueued = dt.datetime.now(dt.UTC)
    batches = []
    for start in range(0, len(bodies), BATCH):
        metadata = {"PartitionContext": meta.Datum(context, "json")}
        batches.append(
            [
                func.EventHubEvent(
                    body=body,
                    trigger_metadata=metadata,
                    enqueued_time=enqueued,
                    sequence_number=first_sequence + start + i,
                    offset=str((first_sequence + start + i) * 500),
                )
                for i, body in enumerate(bodies[start : start + BATCH])
            ]
        )
    return batches


def measure_function(batches: int, repeats: int) -> dict[str, float]:
    """The decode baseline and the ingest function's rate, each the best of `repeats` rounds
    run alternately, so that both see the same machine load."""
    from shared.events.envelope import EventDecoder

    bodies = payment_bodies(BATCH * batches)
    decode = EventDecoder()._fast.decode  # the typed decode the ingest fast path starts with

    def decode_all() -> int:
        for body in bodies:
            decode(body)
        return len(bodies)

    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=Path.cwd()) as folder:
        os.environ["PLATFORM_DATA_DIR"] = folder
        os.environ["DEVHOST_DATA_DIR"] = folder
        import functions.ingest as ingest_module
        from shared.bootstrap import install_platform

        install_platform(None)
        ingest = next(iter(ingest_module.bp._function_builders)).build().get_user_function()
        ingest(hub_batches(bodies[:BATCH], 0)[0])  # warm-up: creates the table, opens it
        decode_rates, ingest_rates = [], []
        with one_core():
            for round_ in range(repeats):
                rounds = hub_batches(bodies, BATCH + round_ * len(bodies))
                # The 20,000 events just built would otherwise make the collector run a full
                # pass (~40 ms) inside the timed round, billing the set-up to the function.
                gc.collect()

                def ingest_all(hub: list[list[Any]] = rounds) -> int:
                    for batch in hub:
                        ingest(batch)
                    return sum(len(b) for b in hub)

                decode_rates.append(best_rate(decode_all, 1))
                ingest_rates.append(best_rate(ingest_all, 1))
                progress(
                    f"round {round_ + 1}: decode {decode_rates[-1]:,.0f}/s, "
                    f"ingest {ingest_rates[-1]:,.0f}/s"
                )
        install_platform(None)
    return {
        "decode": max(decode_rates),
        "ingest": max(ingest_rates),
        "bytes": statistics.mean(map(len, bodies)),
        "commits": 1 + repeats * batches,
    }


class BronzeWatcher(threading.Thread):
    """Notes when each event id first becomes visible in the bronze tables.

    An event is visible once a Delta commit adds the file holding it, so the watcher tails
    each table's `_delta_log` for new commit files and reads the `event_id` column of the
    files they add. It never replays a table's log: a reader that did (`update_incremental`
    every 50 ms) took a third of a core from the devhost under test on these two cores.
    """

    TABLES = ("payment_transaction", "iot_telemetry", "app_interaction")

    def __init__(self, lake: Path, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.lake = lake
        self.interval_s = interval_s
        self.seen: dict[str, float] = {}
        self._next_version = dict.fromkeys(self.TABLES, 0)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for name in self.TABLES:
                self._read_commits(self.lake / "bronze" / name)
            time.sleep(self.interval_s)

    def _read_commits(self, table: Path) -> None:
        import pyarrow.parquet as pq

        name = table.name
        while True:
            commit = table / "_delta_log" / f"{self._next_version[name]:020d}.json"
            try:
                lines = commit.read_bytes().splitlines()
            except FileNotFoundError:
                return
            now = time.perf_counter()
            for line in lines:
                add = json.loads(line).get("add") if line.strip() else None
                if add is None:
                    continue
                path = table / urllib.parse.unquote(add["path"])
                # ParquetFile reads one file; read_table would set up a dataset per call.
                ids = pq.ParquetFile(path).read(columns=["event_id"]).column(0).to_pylist()
                for event_id in ids:
                    self.seen.setdefault(event_id, now)
            self._next_version[name] += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def start_devhost(data_dir: Path) -> tuple[Any, str, str]:
    """A devhost on the app at the project root: (process, events url, function key)."""
    import socket
    import subprocess
    import urllib.request

    root = Path(__file__).resolve().parent.parent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PLATFORM_DATA_DIR": str(data_dir), "PYTHONPATH": str(root)}
    env.pop("DEVHOST_DATA_DIR", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "start",
            "--script-root",
            str(root),
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/host/status", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the devhost did not start") from None
            time.sleep(0.1)
    keys = json.loads((data_dir / "devhost" / "keys.json").read_text(encoding="utf-8"))
    return process, f"http://127.0.0.1:{port}/api/events", keys["hostKeys"]["default"]


def warm_up(url: str, key: str, watcher: BronzeWatcher, timeout_s: float = 60.0) -> None:
    """Land one event of each type before the clock starts: the first batch of a fresh lake
    creates the bronze tables through deltalake, which happens once in a lake's life."""
    import requests

    from benchmarks.traffic import Traffic, wall_clock

    first: dict[str, dict[str, Any]] = {}
    for event in Traffic(4, labels=False).events(wall_clock()):
        first.setdefault(event["type"], event)
        if len(first) == 3:
            break
    response = requests.post(
        url,
        data=json.dumps(list(first.values())),
        headers={"content-type": "application/cloudevents-batch+json", "x-functions-key": key},
        timeout=60,
    )
    response.raise_for_status()
    deadline = time.monotonic() + timeout_s
    while not all(event["id"] in watcher.seen for event in first.values()):
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up events never reached bronze")
        time.sleep(0.05)


def measure_e2e(count: int, request_size: int = 500, posters: int = 4) -> dict[str, float]:
    """Post `count` events of all types from several clients; time each until it is in bronze."""
    import queue
    import signal
    import subprocess

    import requests

    from benchmarks.traffic import Traffic, wall_clock

    events = list(itertools.islice(Traffic(3, labels=False).events(wall_clock()), count))
    requests_ = [events[i : i + request_size] for i in range(0, count, request_size)]
    # Bodies are encoded before the clock starts: the client's JSON encoding is not part of
    # what is measured, and would take CPU from the devhost on this 2-core machine.
    work: queue.Queue[tuple[list[str], bytes]] = queue.Queue()
    for chunk in requests_:
        work.put(([event["id"] for event in chunk], json.dumps(chunk).encode()))
    posted_at: dict[str, float] = {}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=Path.cwd()) as folder:
        data_dir = Path(folder)
        process, url, key = start_devhost(data_dir)
        watcher = BronzeWatcher(data_dir / "lake")
        watcher.start()

        def post() -> None:
            session = requests.Session()
            headers = {"content-type": "application/cloudevents-batch+json", "x-functions-key": key}
            while True:
                try:
                    ids, body = work.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                response = session.post(url, data=body, headers=headers, timeout=60)
                if response.status_code != 202 or response.json()["accepted"] != len(ids):
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                for event_id in ids:
                    posted_at[event_id] = started

        try:
            warm_up(url, key, watcher)
            began = time.perf_counter()
            threads = [threading.Thread(target=post) for _ in range(posters)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            posted = time.perf_counter()
            deadline = posted + 120
            while len(watcher.seen) < count and time.perf_counter() < deadline:
                time.sleep(0.05)
        finally:  # never leave the devhost running
            watcher.stop()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    seen = {i: watcher.seen[i] for i in posted_at if i in watcher.seen}
    missing = count - len(seen)
    if missing:
        raise RuntimeError(f"{missing} events never reached bronze within 120 s")
    latencies = sorted(seen[i] - posted_at[i] for i in posted_at)
    last = max(seen.values())
    return {
        "rate": count / (last - began),
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "post_rate": count / (posted - began),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ingest")
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    args = parser.parse_args(
        argv if argv is not None else [a for a in sys.argv[1:] if a != REPORT.benchmark]
    )
    batches, repeats, e2e_count = (5, 2, 5_000) if args.quick else (20, 3, 100_000)
    progress(f"ingest function: {batches} batches of {BATCH}, best of {repeats} rounds")
    function = measure_function(batches, repeats)
    decode = function["decode"]
    emit(
        "decode_events_per_s",
        decode,
        "events/s",
        role="baseline",
        event_bytes=round(function["bytes"]),
        cores=1,
    )
    emit(
        "ingest_function_events_per_s",
        function["ingest"],
        "events/s",
        baseline="decode_events_per_s",
        ratio=round(function["ingest"] / decode, 3),
        goal=0.25,
        batch=BATCH,
        cores=1,
        commits=function["commits"],
    )
    progress(f"end to end: {e2e_count} events through a devhost")
    e2e = measure_e2e(e2e_count)
    emit(
        "e2e_events_per_s",
        e2e["rate"],
        "events/s",
        baseline="decode_events_per_s",
        ratio=round(e2e["rate"] / decode, 3),
        goal=0.1,
        events=e2e_count,
        post_events_per_s=round(e2e["post_rate"]),
    )
    emit("e2e_latency_p50_s", e2e["p50"], "s")
    emit("e2e_latency_p99_s", e2e["p99"], "s", goal=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
