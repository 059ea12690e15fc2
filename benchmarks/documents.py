"""The embedded document store: point reads, upserts, patches and the change feed.

`python -m benchmarks documents [--documents N]` prints JSON lines, one per figure:

- `sqlite_inserts_per_s`, `sqlite_reads_per_s` (baselines): the same JSON bodies inserted a row
  each, a transaction per row, WAL and `synchronous=FULL` (the store's durability), and read
  back by primary key, with plain `sqlite3`.
- `upserts_per_s` (goal: at least 0.5 x the inserts), `point_reads_per_s`, `patches_per_s` (an
  atomic increment), `change_feed_documents_per_s` (pages of 1,000): `embedded.documents`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.report import Report

REPORT = Report("documents", digits=1)
emit = REPORT.emit
progress = REPORT.progress


def bodies(count: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"alert-{n}",
            "accountId": f"acct-{n % 500}",
            "score": n / count,
            "reason": "card testing" if n % 7 else "unusual country",
            "features": {"txn_10m": n % 13, "amount_z": (n % 17) / 3},
        }
        for n in range(count)
    ]


def rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def raw_sqlite(folder: Path, documents: list[dict[str, object]]) -> tuple[float, float]:
    connection = sqlite3.connect(folder / "raw.sqlite3", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE d (pk TEXT, id TEXT, body TEXT, PRIMARY KEY (pk, id))")

    def insert() -> None:
        for document in documents:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "INSERT INTO d VALUES (?, ?, ?)",
                (document["accountId"], document["id"], json.dumps(document)),
            )
            connection.execute("COMMIT")

    def read() -> None:
        for document in documents:
            connection.execute(
                "SELECT body FROM d WHERE pk = ? AND id = ?",
                (document["accountId"], document["id"]),
            ).fetchone()

    inserts = rate(len(documents), insert)
    reads = rate(len(documents), read)
    connection.close()
    return inserts, reads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks documents", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--documents", type=int, default=5000, help="documents written (5,000)")
    args = parser.parse_args(argv)
    if args.documents < 1:
        parser.error("--documents must be at least 1")
    from embedded.documents.model import ContainerSpec, PatchOperation
    from embedded.documents.store import DocumentStore

    documents = bodies(args.documents)
    count = len(documents)
    with tempfile.TemporaryDirectory(prefix="documents-bench-", dir=Path.cwd()) as name:
        folder = Path(name)
        progress(f"raw SQLite: {count:,} inserts and reads")
        inserts, reads = raw_sqlite(folder, documents)
        emit("sqlite_inserts_per_s", inserts, "rows/s", role="baseline", synchronous="FULL")
        emit("sqlite_reads_per_s", reads, "rows/s", role="baseline")
        store = DocumentStore(folder / "platform.sqlite3")
        alerts = store.container(ContainerSpec("alerts", "/accountId"))
        progress(f"embedded store: {count:,} upserts, reads, patches, the change feed")

        def each(operation: Callable[[dict[str, object]], object]) -> Callable[[], None]:
            def run() -> None:
                for document in documents:
                    operation(document)

            return run

        upserts = rate(count, each(alerts.upsert))
        emit(
            "upserts_per_s",
            upserts,
            "documents/s",
            baseline="sqlite_inserts_per_s",
            ratio=round(upserts / inserts, 3),
            goal=">= 0.5",
        )
        point = rate(count, each(lambda d: alerts.read(str(d["id"]), d["accountId"])))
        emit("point_reads_per_s", point, "documents/s", baseline="sqlite_reads_per_s")
        step = [PatchOperation("incr", "/features/txn_10m", 1)]
        patches = rate(count, each(lambda d: alerts.patch(str(d["id"]), d["accountId"], step)))
        emit("patches_per_s", patches, "documents/s")

        def feed() -> None:
            continuation = None
            while True:
                page = alerts.changes(continuation, max_items=1000)
                if not page.changes:
                    return
                continuation = page.continuation

        emit("change_feed_documents_per_s", rate(count, feed), "documents/s")
        store.close()
    return 0
