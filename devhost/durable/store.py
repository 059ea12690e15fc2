"""SQLite (WAL) persistence of one task hub, with one writer thread that group-commits."""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Statement = tuple[str, Sequence[Any]]

ACTIVE_STATUSES = ("Pending", "Running", "Suspended")
TERMINAL_STATUSES = ("Completed", "Failed", "Terminated", "Canceled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_time TEXT NOT NULL,
    last_updated_time TEXT NOT NULL,
    parent TEXT,
    version TEXT,
    engine_state TEXT
);
CREATE INDEX IF NOT EXISTS instances_by_created ON instances (created_time);
CREATE INDEX IF NOT EXISTS instances_by_status ON instances (status);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    events TEXT NOT NULL,
    PRIMARY KEY (instance_id, chunk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    visible_at REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_instance ON inbox (instance_id);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT
);
"""

INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, status, input, output, custom_status, created_time, "
    "last_updated_time, parent, version, engine_state"
)


class StoreClosed(RuntimeError):
    """The store has been closed; nothing more can be written."""


@dataclass
class InstanceRecord:
    """One row of `instances`; payloads are JSON texts."""

    instance_id: str
    name: str
    execution_id: str
    status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created_time: str
    last_updated_time: str
    parent: str | None = None
    version: str | None = None
    engine_state: str | None = None

    def upsert(self) -> Statement:
        return (
            f"INSERT OR REPLACE INTO instances ({INSTANCE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.instance_id,
                self.name,
                self.execution_id,
                self.status,
                self.input,
                self.output,
                self.custom_status,
                self.created_time,
                self.last_updated_time,
                self.parent,
                self.version,
                self.engine_state,
            ),
        )


@dataclass(frozen=True)
class InboxRow:
    id: int
    instance_id: str
    visible_at: float
    message: dict[str, Any]


@dataclass(frozen=True)
class ActivityRow:
    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class InstanceQuery:
    """Filters of the list and purge operations."""

    created_from: str | None = None
    created_to: str | None = None
    statuses: tuple[str, ...] = ()
    prefix: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.created_from:
            clauses.append("created_time >= ?")
            params.append(self.created_from)
        if self.created_to:
            clauses.append("created_time <= ?")
            params.append(self.created_to)
        if self.statuses:
            clauses.append(f"status IN ({', '.join('?' for _ in self.statuses)})")
            params.extend(self.statuses)
        if self.prefix:
            clauses.append("substr(instance_id, 1, ?) = ?")
            params.extend([len(self.prefix), self.prefix])
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    return connection


class Store:
    """The hub's database. Writes are queued and committed in batches by one thread."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._synchronous = synchronous
        self._writer = connect(path, synchronous)
        self._writer.executescript(SCHEMA)
        self._queue: queue.Queue[tuple[list[Statement], asyncio.Future[None]] | None] = (
            queue.Queue()
        )
        self._local = threading.local()
        self._closed = False
        self.commits = 0
        self._thread = threading.Thread(target=self._write_loop, name="durable-store", daemon=True)
        self._thread.start()

    # writes

    def write(self, statements: list[Statement]) -> asyncio.Future[None]:
        """Queue statements to commit atomically; the future resolves once they are durable."""
        if self._closed:
            raise StoreClosed(f"{self.path}: the store is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put((statements, future))
        return future

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[tuple[list[Statement], asyncio.Future[None]]]) -> None:
        try:
            self._run(statement for statements, _ in batch for statement in statements)
            outcomes: list[BaseException | None] = [None] * len(batch)
        except sqlite3.Error:
            # One bad write must not fail the others that happened to share its commit.
            outcomes = []
            for statements, _ in batch:
                try:
                    self._run(statements)
                    outcomes.append(None)
                except sqlite3.Error as error:
                    outcomes.append(error)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.get_loop().call_soon_threadsafe(_settle, future, outcome)

    def _run(self, statements: Iterable[Statement]) -> None:
        connection = self._writer
        connection.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                connection.execute(sql, params)
            connection.execute("COMMIT")
            self.commits += 1
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    # reads

    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect(self.path, self._synchronous)
            self._local.connection = connection
        return connection

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read on this thread's connection (call it off the event loop)."""
        return query(self._reader())

    async def aread(self, query: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.read, query)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._writer.close()


def _settle(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)


# queries


def instance_from_row(row: Sequence[Any]) -> InstanceRecord:
    return InstanceRecord(*row)


def get_instance(connection: sqlite3.Connection, instance_id: str) -> InstanceRecord | None:
    row = connection.execute(
        f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?", (instance_id,)
    ).fetchone()
    return instance_from_row(row) if row else None


def list_instances(
    connection: sqlite3.Connection, query: InstanceQuery, limit: int | None, after: str | None
) -> list[InstanceRecord]:
    """Instances by creation time then id; `after` is a continuation token from a prior page."""
    where, params = query.where()
    if after:
        created, _, instance_id = after.partition("|")
        where += (" AND " if where else " WHERE ") + "(created_time, instance_id) > (?, ?)"
        params.extend([created, instance_id])
    sql = f"SELECT {INSTANCE_COLUMNS} FROM instances{where} ORDER BY created_time, instance_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [instance_from_row(row) for row in connection.execute(sql, params)]


def get_history(connection: sqlite3.Connection, instance_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for (chunk,) in connection.execute(
        "SELECT events FROM history WHERE instance_id = ? ORDER BY chunk", (instance_id,)
    ):
        events.extend(json.loads(chunk))
    return events


def load_active(
    connection: sqlite3.Connection,
) -> tuple[
    list[InstanceRecord], dict[str, list[dict[str, Any]]], list[InboxRow], list[ActivityRow]
]:
    """Everything needed to resume: active instances, their history, inbox and activities."""
    marks = ", ".join("?" for _ in ACTIVE_STATUSES)
    records = [
        instance_from_row(row)
        for row in connection.execute(
            f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE status IN ({marks})", ACTIVE_STATUSES
        )
    ]
    histories = {
        record.instance_id: get_history(connection, record.instance_id) for record in records
    }
    inbox = [
        InboxRow(row[0], row[1], row[2], json.loads(row[3]))
        for row in connection.execute(
            "SELECT id, instance_id, visible_at, message FROM inbox ORDER BY id"
        )
    ]
    activities = [
        ActivityRow(*row)
        for row in connection.execute(
            "SELECT id, instance_id, execution_id, task_id, name, input FROM activities ORDER BY id"
        )
    ]
    return records, histories, inbox, activities


def next_chunk(connection: sqlite3.Connection, instance_id: str) -> int:
    row = connection.execute(
        "SELECT COALESCE(MAX(chunk) + 1, 0) FROM history WHERE instance_id = ?", (instance_id,)
    ).fetchone()
    return int(row[0])


def max_ids(connection: sqlite3.Connection) -> tuple[int, int]:
    inbox = connection.execute("SELECT COALESCE(MAX(id), 0) FROM inbox").fetchone()[0]
    activity = connection.execute("SELECT COALESCE(MAX(id), 0) FROM activities").fetchone()[0]
    return int(inbox), int(activity)


def purge_statements(instance_id: str) -> list[Statement]:
    return [
        ("DELETE FROM instances WHERE instance_id = ?", (instance_id,)),
        ("DELETE FROM history WHERE instance_id = ?", (instance_id,)),
        ("DELETE FROM inbox WHERE instance_id = ?", (instance_id,)),
        ("DELETE FROM activities WHERE instance_id = ?", (instance_id,)),
    ]
