"""Audit chains and events for tests: valid chains built as the trail builds them, a clock
that moves on every reading, and events."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from embedded.audit.chain import RECORD, genesis_hash, record_time, seal
from embedded.audit.checkpoints import Checkpoint
from shared.audit.events import Actor, AuditEvent

PARTITION = "2026-12-07T12"
HOUR = datetime(2026, 12, 7, 12, tzinfo=UTC).timestamp()  # the partition's first second


def build_chain(
    count: int, partition: str = PARTITION, start: float = HOUR
) -> list[dict[str, Any]]:
    """A valid chain of `count` records, one second apart from `start`."""
    records: list[dict[str, Any]] = []
    prev = genesis_hash(partition)
    for seq in range(1, count + 1):
        record = seal(
            {
                "id": str(uuid.UUID(int=seq)),
                "type": RECORD,
                "partition": partition,
                "seq": seq,
                "time": record_time(start + seq),
                "action": "authz_fail" if seq % 2 else "pipeline_started",
                "outcome": "denied" if seq % 2 else "success",
                "actor": {"kind": "user", "id": f"user-{seq % 3}", "tenant": "tenant-1"},
                "resource": "POST /api/events",
                "reason": "" if seq % 2 == 0 else "missing role Platform.Writer",
                "status": 403 if seq % 2 else 202,
                "client": "127.0.0.1",
                "traceparent": "",
                "prev": prev,
            }
        )
        records.append(record)
        prev = record["hash"]
    return records


def end_of(records: list[dict[str, Any]]) -> Checkpoint:
    """The checkpoint of a chain closed after its last record."""
    last = max(records, key=lambda r: r["seq"])
    return Checkpoint(last["partition"], last["seq"], last["hash"], "2026-12-07T13:00:00.000000Z")


def event(**changes: Any) -> AuditEvent:
    """An allowed request by a user, with any field changed."""
    fields: dict[str, Any] = {
        "action": "request",
        "outcome": "success",
        "actor": Actor("user", "00000000-0000-0000-0000-0000000000aa", "tenant-1"),
        "resource": "GET /api/health",
        "reason": "",
        "status": 200,
        "client": "127.0.0.1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    fields.update(changes)
    return AuditEvent(**fields)


class StepClock:
    """Seconds since the epoch, moving on by `step` at every reading (thread-safe)."""

    def __init__(self, start: float = HOUR, step: float = 0.001) -> None:
        self.now = start
        self.step = step
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now
