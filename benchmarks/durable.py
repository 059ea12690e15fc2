"""Durable engine throughput on SQLite: chained, fanned-out and concurrent orchestrations.

Prints JSON lines `{"benchmark": "durable", "metric", "value", "unit", ...}`, with the durable
SQLite commit rate on the same data dir as the baseline that bounds the engine. The figures
published for the Azure Storage provider (per instance: 5 sequential, 100 fan-out activities/s)
are carried as `reference`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import azure.durable_functions as df

from benchmarks.report import Report
from devhost.appsettings import AppSettings
from devhost.durable import sdk_speedups
from devhost.durable.engine import Engine, EngineOptions
from devhost.durable.store import Store, connect
from devhost.indexing import index_app
from devhost.invocation import Invoker

REPORT = Report("durable", digits=1)
line = REPORT.emit
progress = REPORT.progress

SEQUENTIAL = 200
FAN_OUT = 2000
ORCHESTRATIONS = 200
ACTIVITIES_EACH = 5

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    for index in range(context.get_input()):
        yield context.call_activity("noop", index)
    return context.get_input()


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    results = yield context.task_all(
        [context.call_activity("noop", index) for index in range(context.get_input())]
    )
    return len(results)


@app.activity_trigger(input_name="value")
def noop(value: int) -> int:
    return value


def sqlite_commits_per_s(data_dir: Path, seconds: float = 2.0) -> tuple[float, int]:
    """Single-row durable commits (WAL, synchronous=FULL, as the engine) on the same disk."""
    connection = connect(data_dir / "durable" / "baseline.sqlite", "FULL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO t (v) VALUES (?)", ("x" * 100,))
        connection.execute("COMMIT")
        count += 1
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed, count


async def timed(engine: Engine, name: str, inputs: list[int]) -> float:
    started = time.perf_counter()
    records = [await engine.start_instance(name, None, json.dumps(n)) for n in inputs]
    finals = await asyncio.gather(*(engine.wait(r.instance_id) for r in records))
    elapsed = time.perf_counter() - started
    failed = [f for f in finals if f.status != "Completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} {name} instances did not complete: {failed[0]}")
    return elapsed


async def measure(data_dir: Path) -> None:
    functions = index_app(app, AppSettings({}, environ={}))
    store = Store(data_dir / "durable" / "BenchHub.sqlite", "FULL")
    invoker = Invoker()
    engine = Engine(store, invoker, functions, EngineOptions(), logging.getLogger("bench"))
    sdk_speedups.install()
    await engine.start()
    try:
        progress(f"one orchestration chaining {SEQUENTIAL} activities")
        elapsed = await timed(engine, "chain", [SEQUENTIAL])
        line(
            "sequential_activities_per_s",
            SEQUENTIAL / elapsed,
            "activities/s",
            activities=SEQUENTIAL,
            seconds=round(elapsed, 3),
            goal=200,
            reference=5,
        )
        progress(f"one orchestration fanning out {FAN_OUT} activities")
        elapsed = await timed(engine, "fan_out", [FAN_OUT])
        line(
            "fanout_activities_per_s",
            FAN_OUT / elapsed,
            "activities/s",
            activities=FAN_OUT,
            seconds=round(elapsed, 3),
            goal=1000,
            reference=100,
        )
        progress(f"{ORCHESTRATIONS} concurrent orchestrations of {ACTIVITIES_EACH} activities")
        elapsed = await timed(engine, "chain", [ACTIVITIES_EACH] * ORCHESTRATIONS)
        line(
            "orchestrations_per_s",
            ORCHESTRATIONS / elapsed,
            "orchestrations/s",
            orchestrations=ORCHESTRATIONS,
            activities_each=ACTIVITIES_EACH,
            seconds=round(elapsed, 3),
            goal=50,
            engine_commits=store.commits,
        )
    finally:
        await engine.stop(10)
        invoker.close()
    progress("baseline: durable SQLite commits on the same data dir")
    rate, count = sqlite_commits_per_s(data_dir)
    line("sqlite_commits_per_s", rate, "commits/s", commits=count, synchronous="FULL", wal=True)


def main() -> int:
    argparse.ArgumentParser(
        prog="python -m benchmarks durable", description=__doc__.split("\n", 1)[0]
    ).parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="durable-bench-", dir=Path.cwd()) as folder:
        asyncio.run(measure(Path(folder)))
    return 0
