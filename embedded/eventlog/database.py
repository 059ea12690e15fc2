"""The event log's SQLite file: schema, per-thread WAL connections, transactions and hubs."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embedded.eventlog import segments
from embedded.eventlog.records import (
    RECORD_HEADER_BYTES,
    EventLogBusy,
    EventLogError,
    InvalidName,
    InvalidPartition,
    UnknownHub,
)

SCHEMA_VERSION = 2  # 1 stored a row per event; `migrate_events` converts it
MAX_PARTITIONS = 1024
SEGMENT_ROW = "(" + ", ".join(["?"] * 11) + ")"  # hub_id, partition, then a Segment
INSERT_SEGMENTS = "INSERT INTO segments VALUES "
_HUB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hubs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    partition_count INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    round_robin INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS partitions (
    hub_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    next_sequence INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    last_enqueued_us INTEGER NOT NULL,
    PRIMARY KEY (hub_id, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    hub_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    first_sequence INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    enqueued_us INTEGER NOT NULL,
    lengths BLOB NOT NULL,
    bodies BLOB NOT NULL,
    partition_keys TEXT,
    properties TEXT,
    PRIMARY KEY (hub_id, partition, first_sequence)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    hub_id INTEGER NOT NULL,
    consumer_group TEXT NOT NULL,
    partition INTEGER NOT NULL,
    sequence_number INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (hub_id, consumer_group, partition)
) WITHOUT ROWID;
"""


_OldRow = tuple[int, int, int, int, int, str | None, str | None, bytes]


def migrate_events(connection: sqlite3.Connection) -> None:
    """Move a schema 1 log's events, a row each, into segments, then drop the old table.

    Consecutive events of a partition that share an enqueued time (one append) and whose
    offsets follow on make one segment, split as appends split them.
    """
    rows = connection.execute(
        "SELECT hub_id, partition, sequence_number, offset, enqueued_us, partition_key, "
        "properties, body FROM events ORDER BY hub_id, partition, sequence_number"
    )
    run: list[_OldRow] = []
    for row in rows:
        if run and not _follows(run[-1], row):
            _insert_runs(connection, run)
            run = []
        run.append(row)
    _insert_runs(connection, run)
    connection.execute("DROP TABLE events")


def _follows(last: _OldRow, row: _OldRow) -> bool:
    return (
        row[:2] == last[:2]
        and row[4] == last[4]
        and row[2] == last[2] + 1
        and row[3] == last[3] + len(last[7]) + RECORD_HEADER_BYTES
    )


def _insert_runs(connection: sqlite3.Connection, run: list[_OldRow]) -> None:
    for indexes in segments.runs([len(row[7]) for row in run]):
        chosen = run[indexes.start : indexes.stop]
        hub_id, partition, sequence, offset, enqueued_us = chosen[0][:5]
        segment = segments.encode(
            sequence,
            offset,
            enqueued_us,
            [row[7] for row in chosen],
            [row[5] for row in chosen],
            [row[6] for row in chosen],
        )
        connection.execute(INSERT_SEGMENTS + SEGMENT_ROW, (hub_id, partition, *segment))


def hub_key(hub: str) -> str:
    """The stored form of a hub name: validated as Event Hubs does, and lower-cased because
    entity names are case-insensitive."""
    if not isinstance(hub, str) or not _HUB_NAME.match(hub):
        raise InvalidName(
            f"event hub name {hub!r}: use 1-256 letters, digits, '.', '-' or '_', "
            "starting and ending with a letter or digit"
        )
    return hub.lower()


def group_key(consumer_group: str) -> str:
    if not isinstance(consumer_group, str) or not 0 < len(consumer_group) <= 256:
        raise InvalidName(f"consumer group name {consumer_group!r}: use 1-256 characters")
    return consumer_group.lower()


def check_partition(hub: str, partition_count: int, partition: int) -> None:
    if not isinstance(partition, int) or not 0 <= partition < partition_count:
        raise InvalidPartition(
            f"hub {hub!r} has partitions 0-{partition_count - 1}, not {partition!r}"
        )


class Database:
    """One SQLite file in WAL mode, with a connection per thread and a cache of hub ids."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._hubs: dict[str, tuple[int, int]] = {}
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.errors():
            self._create_schema(self.connection())

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use `transaction` to write several rows)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        if self._closed:
            raise EventLogError(f"{self.path}: the event log is closed")
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._enable_wal(connection)
        connection.execute("PRAGMA synchronous=FULL")
        # Deleted rows are overwritten with zeros, not just unlinked: expired bodies may hold
        # raw personal data, which must leave the disk when retention ends.
        connection.execute("PRAGMA secure_delete=ON")
        connection.execute("PRAGMA journal_size_limit=67108864")
        self._local.connection = connection
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite reports a busy
        # database here at once instead of calling the busy handler: retry until the timeout.
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error).lower() or time.monotonic() > deadline:
                    connection.close()
                    raise
            time.sleep(0.005)

    def _create_schema(self, connection: sqlite3.Connection) -> None:
        with self.transaction(connection):
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise EventLogError(
                    f"{self.path}: written by a newer devhost (schema {version}); "
                    "use another data dir or delete this file"
                )
            if version == SCHEMA_VERSION:
                return
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            if version == 1:
                migrate_events(connection)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn SQLite errors into EventLogError (EventLogBusy when the lock never came)."""
        try:
            yield
        except sqlite3.OperationalError as error:
            text = str(error).lower()
            if "locked" in text or "busy" in text:
                raise EventLogBusy(
                    f"{self.path}: still locked by another writer after {self.busy_timeout_s:.0f} s"
                ) from error
            raise EventLogError(f"{self.path}: {error}") from error
        except sqlite3.DatabaseError as error:
            raise EventLogError(f"{self.path}: {error}") from error

    @contextmanager
    def transaction(self, connection: sqlite3.Connection) -> Iterator[None]:
        """A write transaction holding the write lock from the start, so it never deadlocks."""
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def truncate_wal(self, connection: sqlite3.Connection) -> bool:
        """Copy the write-ahead log into the database and empty it, so that no older page
        images (of deleted rows, say) stay in it; False if a reader kept it from finishing."""
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy

    def close(self) -> None:
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    # hubs ------------------------------------------------------------------------------

    def find_hub(self, key: str) -> tuple[int, int] | None:
        """(id, partition count) of a hub by its key, or None if it does not exist yet."""
        found = self._hubs.get(key)
        if found is None:
            with self.errors():
                row = (
                    self.connection()
                    .execute("SELECT id, partition_count FROM hubs WHERE name = ?", (key,))
                    .fetchone()
                )
            if row is None:
                return None
            # Hubs are never dropped and their partition count never changes, so caching is safe.
            found = self._hubs[key] = (int(row[0]), int(row[1]))
        return found

    def existing_hub(self, key: str) -> tuple[int, int]:
        found = self.find_hub(key)
        if found is None:
            raise UnknownHub(f"{self.path}: no event hub {key!r} yet")
        return found

    def ensure_hub(self, key: str, partitions: int) -> tuple[int, int]:
        """Create the hub with `partitions` unless it exists (in any process); return it."""
        found = self.find_hub(key)
        if found is not None:
            return found
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartition(f"hub {key!r}: a partition count must be 1-{MAX_PARTITIONS}")
        connection = self.connection()
        with self.errors(), self.transaction(connection):
            cursor = connection.execute(
                "INSERT OR IGNORE INTO hubs (name, partition_count, created_us) VALUES (?, ?, ?)",
                (key, partitions, time.time_ns() // 1000),
            )
            if cursor.rowcount:
                connection.executemany(
                    "INSERT INTO partitions VALUES (?, ?, 0, 0, 0)",
                    [(cursor.lastrowid, p) for p in range(partitions)],
                )
        return self.existing_hub(key)
