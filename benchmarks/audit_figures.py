"""Audit trail figures for `python -m benchmarks auth`: appends per second on the embedded
store, beside raw SQLite inserts of the same records with the same durability.

`measure(records, directory)` returns the figures as the benchmark lines print them
(`{"benchmark", "metric", "value", "unit", ...}`):

- `sqlite_inserts_per_s` (baseline): the same record bodies, one row per transaction
  (`BEGIN IMMEDIATE`, insert, `COMMIT`), WAL and `synchronous=FULL`, with plain `sqlite3`.
- `store_batches_per_s` (reference): what an append asks of the embedded store, without the
  trail: a transactional batch of the head's replace on its etag and a record's create.
- `audit_appends_per_s`: `DocumentAuditTrail.append` on the embedded store (the same SQLite
  settings): fields scrubbed, the record hashed and chained, and that one batch.
- `audit_verify_records_per_s`: `verify_trail` over what was appended (a hash per record, the
  records streamed in seq order per hour).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from embedded.audit.chain import HEAD, RECORD, genesis_hash, partition_of, record_time, seal
from embedded.audit.checkpoints import checkpoints_path
from embedded.audit.verify import verify_trail
from embedded.documents.model import BatchOperation
from embedded.documents.store import DocumentStore
from shared.audit.checkpoints import FileCheckpoints
from shared.audit.events import Actor, AuditEvent
from shared.audit.fields import record_fields
from shared.audit.trail import AUDIT_CONTAINER, DocumentAuditTrail

BENCHMARK = "auth"
WARM_UP = 50  # the first fsyncs of a new WAL file cost more: written, not timed


def events(count: int) -> list[AuditEvent]:
    """Requests as the platform records them: users and apps, allowed and refused."""
    return [
        AuditEvent(
            action="authz_fail" if n % 5 == 0 else "request",
            outcome="denied" if n % 5 == 0 else "success",
            actor=Actor(
                "user" if n % 3 else "app",
                f"{n % 97:08x}-0000-4000-8000-00000000abcd",
                "72f988bf-86f1-41af-91ab-2d7cd011db47",
            ),
            resource="POST /api/events" if n % 2 else "GET /api/models",
            reason="missing Platform.Writer" if n % 5 == 0 else "",
            status=403 if n % 5 == 0 else 200,
            client=f"10.0.{n % 256}.{n % 200 + 1}",
            traceparent=f"00-{n:032x}-{n:016x}-01",
        )
        for n in range(count)
    ]


def bodies(batch: list[AuditEvent]) -> list[tuple[str, str, str]]:
    """(partition, id, JSON) of records like the trail's, for the baseline's inserts."""
    now = time.time()
    partition = partition_of(now)
    prev = genesis_hash(partition)
    rows = []
    for seq, event in enumerate(batch, start=1):
        record = seal(
            {
                "id": f"record-{seq}",
                "type": RECORD,
                "partition": partition,
                "seq": seq,
                "time": record_time(now),
                **record_fields(event),
                "prev": prev,
            }
        )
        prev = record["hash"]
        rows.append((partition, record["id"], json.dumps(record, separators=(",", ":"))))
    return rows


def sqlite_inserts(path: Path, rows: list[tuple[str, str, str]]) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE d (pk TEXT, id TEXT, body TEXT, PRIMARY KEY (pk, id))")

    def insert(batch: list[tuple[str, str, str]], suffix: str) -> None:
        for pk, id, body in batch:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO d VALUES (?, ?, ?)", (pk, id + suffix, body))
            connection.execute("COMMIT")

    insert(rows[:WARM_UP], "-warm")
    started = time.perf_counter()
    insert(rows, "")
    elapsed = time.perf_counter() - started
    connection.close()
    return len(rows) / elapsed


def store_batches(path: Path, rows: list[tuple[str, str, str]]) -> float:
    store = DocumentStore(path)
    try:
        container = store.container(AUDIT_CONTAINER)
        documents = [json.loads(body) for _, _, body in rows]
        head = {"id": HEAD, "type": HEAD, "partition": documents[0]["partition"], "state": "open"}
        etag = container.create({**head, "last_seq": 0})["_etag"]

        def append(batch: list[dict[str, Any]], suffix: str) -> None:
            nonlocal etag
            for document in batch:
                moved = {**head, "last_seq": document["seq"], "last_hash": document["hash"]}
                record = {**document, "id": document["id"] + suffix}
                done = container.batch(
                    document["partition"],
                    [
                        BatchOperation("replace", document=moved, if_match=etag),
                        BatchOperation("create", document=record),
                    ],
                )
                etag = (done[0] or {})["_etag"]

        append(documents[:WARM_UP], "-warm")
        started = time.perf_counter()
        append(documents, "")
        return len(documents) / (time.perf_counter() - started)
    finally:
        store.close()


def measure(records: int, directory: Path) -> list[dict[str, Any]]:
    """The audit figures for `records` appends, in fresh files under `directory`."""
    if records < 1:
        raise ValueError("records must be at least 1")
    directory.mkdir(parents=True, exist_ok=True)
    batch = events(records)
    rows = bodies(batch)
    inserts = sqlite_inserts(directory / "raw.sqlite3", rows)
    batches = store_batches(directory / "batches.sqlite3", rows)
    store = DocumentStore(directory / "documents" / "platform.sqlite3")
    try:
        container = store.container(AUDIT_CONTAINER)
        trail = DocumentAuditTrail(
            container, checkpoints=FileCheckpoints(checkpoints_path(directory))
        )
        for event in batch[:WARM_UP]:
            trail.append(event)
        started = time.perf_counter()
        for event in batch:
            trail.append(event)
        appends = records / (time.perf_counter() - started)
        started = time.perf_counter()
        for event in batch:  # requests' records: queued, group-committed by the writer thread
            trail.submit(event)
        if not trail.flush(600):
            raise RuntimeError("the audit writer did not finish")
        submits = records / (time.perf_counter() - started)
        started = time.perf_counter()
        results = verify_trail(container, {})
        verified = sum(result.records for result in results)
        verify_rate = verified / (time.perf_counter() - started)
        if any(result.problem for result in results):
            raise RuntimeError(f"the benchmark's own chain does not hold: {results}")
    finally:
        store.close()
    return [
        _figure(
            "sqlite_inserts_per_s",
            inserts,
            "rows/s",
            role="baseline",
            journal_mode="WAL",
            synchronous="FULL",
            transaction="one per row",
        ),
        _figure(
            "store_batches_per_s",
            batches,
            "batches/s",
            role="reference",
            baseline="sqlite_inserts_per_s",
            ratio=round(batches / inserts, 3),
        ),
        _figure(
            "audit_appends_per_s",
            appends,
            "records/s",
            baseline="sqlite_inserts_per_s",
            ratio=round(appends / inserts, 3),
            of_store_batches=round(appends / batches, 3),
            records=records,
        ),
        _figure(
            "audit_submits_per_s",
            submits,
            "records/s",
            baseline="sqlite_inserts_per_s",
            ratio=round(submits / inserts, 3),
            records=records,
        ),
        _figure("audit_verify_records_per_s", verify_rate, "records/s", records=verified),
    ]


def _figure(metric: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {
        "benchmark": BENCHMARK,
        "metric": metric,
        "value": round(value, 1),
        "unit": unit,
        **extra,
    }
