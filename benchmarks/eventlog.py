"""The devhost's event log: appends and reads, alone and beside a busy Python thread.

`python -m benchmarks eventlog` prints JSON lines, one per figure:

- `sqlite_insert_rows_per_s` (baseline): the same bodies inserted a row each with
  `executemany`, in transactions of one request's events, WAL and `synchronous=FULL`, as the
  log commits.
- `append_events_per_s`, `read_events_per_s`: `EventLog.append_batch` in requests of 500
  events (keyed, 4 partitions), then reading every partition back 1,000 at a time.
- `append_busy_events_per_s`, `read_busy_events_per_s`: the same while another thread of the
  process runs Python code, as a function does beside the devhost's consumers. Each SQLite
  call releases the GIL, and getting it back can take a switch interval (5 ms), so these
  show how many calls an event costs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.report import Report

REPORT = Report("eventlog", digits=1)
emit = REPORT.emit
progress = REPORT.progress

REQUEST = 500


def requests(count: int) -> list[list[tuple[bytes, str, None]]]:
    from benchmarks.traffic import Traffic, wall_clock

    events = itertools.islice(Traffic(5, labels=False).events(wall_clock()), count)
    rows = []
    for event in events:
        data = event["data"]
        key = data.get("account_id") or data.get("device_id") or data.get("user_id")
        rows.append((json.dumps(event, separators=(",", ":")).encode(), str(key), None))
    return [rows[i : i + REQUEST] for i in range(0, count, REQUEST)]


@contextmanager
def busy_thread(busy: bool) -> Iterator[None]:
    """A thread running pure Python for as long as the block runs (if `busy`)."""
    halt = threading.Event()

    def spin() -> None:
        total = 0
        while not halt.is_set():
            for number in range(10_000):
                total += number

    thread = threading.Thread(target=spin, daemon=True)
    if busy:
        thread.start()
    try:
        yield
    finally:
        halt.set()
        if busy:
            thread.join()


def rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def sqlite_baseline(folder: Path, batches: list[list[tuple[bytes, str, None]]]) -> float:
    connection = sqlite3.connect(folder / "baseline.sqlite3", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE events (body BLOB NOT NULL, partition_key TEXT)")

    def run() -> None:
        for batch in batches:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT INTO events VALUES (?, ?)", [(body, key) for body, key, _ in batch]
            )
            connection.execute("COMMIT")

    try:
        return rate(sum(map(len, batches)), run)
    finally:
        connection.close()


def event_log_rates(
    folder: Path, batches: list[list[tuple[bytes, str, None]]], busy: bool
) -> tuple[float, float]:
    from embedded.eventlog.log import EventLog, event_log_path

    count = sum(map(len, batches))
    with EventLog(event_log_path(folder / ("busy" if busy else "idle"))) as log:
        partitions = log.ensure_hub("events", 4)

        def append() -> None:
            for batch in batches:
                log.append_batch("events", batch)

        def read() -> None:
            for partition in range(partitions):
                after = -1
                while events := log.read("events", partition, after, 1000):
                    after = events[-1].sequence_number

        with busy_thread(busy):
            appended = rate(count, append)
            read_back = rate(count, read)
    return appended, read_back


def positive(text: str) -> int:
    """An event count: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a count of events (at least 1)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks eventlog")
    parser.add_argument("--events", type=positive, default=40_000)
    parser.add_argument("--busy-events", type=positive, default=5_000)
    args = parser.parse_args(
        argv if argv is not None else [a for a in sys.argv[1:] if a != REPORT.benchmark]
    )
    batches = requests(args.events)
    busy_batches = batches[: max(1, args.busy_events // REQUEST)]
    with tempfile.TemporaryDirectory(prefix="eventlog-bench-", dir=Path.cwd()) as name:
        folder = Path(name)
        progress(f"{args.events} events in requests of {REQUEST}")
        baseline = sqlite_baseline(folder, batches)
        appended, read_back = event_log_rates(folder, batches, busy=False)
        progress(f"{len(busy_batches) * REQUEST} events beside a busy thread")
        busy_appended, busy_read = event_log_rates(folder, busy_batches, busy=True)
    emit("sqlite_insert_rows_per_s", baseline, "rows/s", role="baseline")
    for metric, value in (
        ("append_events_per_s", appended),
        ("read_events_per_s", read_back),
        ("append_busy_events_per_s", busy_appended),
        ("read_busy_events_per_s", busy_read),
    ):
        emit(
            metric,
            value,
            "events/s",
            baseline="sqlite_insert_rows_per_s",
            ratio=round(value / baseline, 3),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
