"""A durable, partitioned event log on SQLite in WAL mode: the devhost's local Event Hubs.

A plain library (standard library only), so any process can publish without the devhost
running: `EventLog(event_log_path(data_dir)).append_batch("orders", [(body, key, {})])`.

Durability: WAL with `synchronous=FULL` syncs the WAL file on every commit, so when
`append_batch` returns, its events survive a process crash and a power loss alike.
Several processes may write at once; each batch takes the write lock (`BEGIN IMMEDIATE`)
and waits up to the busy timeout for it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedded.eventlog import segments
from embedded.eventlog.database import (
    INSERT_SEGMENTS,
    SEGMENT_ROW,
    Database,
    check_partition,
    group_key,
    hub_key,
)
from embedded.eventlog.partitioning import partition_for_key
from embedded.eventlog.records import MAX_EVENT_BYTES as MAX_EVENT_BYTES
from embedded.eventlog.records import (
    RECORD_HEADER_BYTES,
    encode_properties,
    from_micros,
    to_micros,
)
from embedded.eventlog.records import Checkpoint as Checkpoint
from embedded.eventlog.records import EventLogBusy as EventLogBusy
from embedded.eventlog.records import EventLogError as EventLogError
from embedded.eventlog.records import EventTooLarge as EventTooLarge
from embedded.eventlog.records import InvalidEvent as InvalidEvent
from embedded.eventlog.records import InvalidName as InvalidName
from embedded.eventlog.records import InvalidPartition as InvalidPartition
from embedded.eventlog.records import NewEvent as NewEvent
from embedded.eventlog.records import PartitionInfo as PartitionInfo
from embedded.eventlog.records import Position as Position
from embedded.eventlog.records import PropertyValue as PropertyValue
from embedded.eventlog.records import StoredEvent as StoredEvent
from embedded.eventlog.records import UnknownHub as UnknownHub
from embedded.eventlog.settings import LogSettings as LogSettings
from embedded.eventlog.settings import event_log_path as event_log_path
from embedded.eventlog.settings import namespace_for_connection as namespace_for_connection
from embedded.eventlog.watch import announce_append
from embedded.eventlog.watch import watch_appends as watch_appends

log = logging.getLogger("embedded.eventlog")

DEFAULT_BUSY_TIMEOUT_S = 30.0
_ROWS_PER_INSERT = 256  # 2,816 parameters, well under SQLite's limit of 32,766
_PURGE_CHUNK = 20_000


class EventLog:
    """One namespace's hubs, events and consumer-group checkpoints in one SQLite file.

    Thread-safe: each thread gets its own connection. `close()` closes them all.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        settings: LogSettings | None = None,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self.path = Path(path).resolve()
        self.settings = settings or LogSettings()
        self._max_event_bytes = max_event_bytes
        self._db = Database(self.path, busy_timeout_s)
        self._wal_holds_purged = False

    @classmethod
    def for_data_dir(
        cls, data_dir: str | Path, settings: Mapping[str, str], connection: str | None = None
    ) -> EventLog:
        """The log a binding's `connection` resolves to under `data_dir`, configured from app
        settings (DEVHOST_EVENTHUB_PARTITIONS[__<hub>], DEVHOST_EVENTHUB_RETENTION_HOURS)."""
        namespace = namespace_for_connection(settings, connection)
        return cls(
            event_log_path(data_dir, namespace), settings=LogSettings.from_settings(settings)
        )

    def close(self) -> None:
        """Close every connection this log opened (in any thread)."""
        self._db.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ensure_hub(self, hub: str, partitions: int | None = None) -> int:
        """Create the hub if needed (with `partitions`, else the configured count); return its
        partition count, which is fixed once the hub exists."""
        key = hub_key(hub)
        return self._db.ensure_hub(key, partitions or self.settings.partitions_for(key))[1]

    def hubs(self) -> dict[str, int]:
        """Every hub of the log with its partition count."""
        with self._db.errors():
            rows = self._db.connection().execute("SELECT name, partition_count FROM hubs")
            return {str(name): int(count) for name, count in rows}

    # publishing ------------------------------------------------------------------------

    def append_batch(
        self,
        hub: str,
        events: Iterable[NewEvent | tuple[bytes, str | None, Mapping[str, PropertyValue] | None]],
        *,
        partition_id: int | None = None,
    ) -> list[Position]:
        """Append events atomically, creating the hub on first use; return their positions in
        the order given. On return the events are durable (fsynced).

        Each event is `(body, partition_key or None, properties or None)`. A key picks its
        partition by Event Hubs' hash; keyless events go round robin, unless `partition_id`
        sends the whole batch to one partition (it cannot be combined with keys, as in the SDK).
        Raises InvalidEvent (nothing is stored) or EventLogBusy.
        """
        key = hub_key(hub)
        prepared = self._prepare(events, partition_id)
        if not prepared:
            return []
        hub_id, partition_count = self._db.ensure_hub(key, self.settings.partitions_for(key))
        if partition_id is not None:
            check_partition(key, partition_count, partition_id)
        connection = self._db.connection()
        with self._db.errors(), self._db.transaction(connection):
            positions, touched = self._append(
                connection, hub_id, partition_count, prepared, partition_id
            )
        announce_append(self.path, key, touched)
        return positions

    def _prepare(
        self, events: Iterable[Any], partition_id: int | None
    ) -> list[tuple[bytes, str | None, str | None]]:
        prepared = []
        limit = self._max_event_bytes
        # Publishers send the same properties with many events (the intake's protection mark):
        # encoded once per batch, not once per event.
        last_properties: object = None
        last_encoded: str | None = None
        for index, event in enumerate(events):
            try:
                body, partition_key, properties = event
            except (TypeError, ValueError):
                raise InvalidEvent(
                    index, "expected (body, partition_key, properties) or a NewEvent"
                ) from None
            if not isinstance(body, bytes):
                if not isinstance(body, bytearray | memoryview):
                    raise InvalidEvent(index, f"the body must be bytes, not {type(body).__name__}")
                body = bytes(body)
            if len(body) > limit:
                raise EventTooLarge(index, f"{len(body)} bytes is over the {limit}-byte limit")
            if partition_key is not None:
                if not isinstance(partition_key, str):
                    raise InvalidEvent(index, "the partition key must be a string or None")
                if partition_id is not None:
                    raise InvalidEvent(index, "a partition key cannot be sent to a partition id")
                try:
                    partition_key.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidEvent(index, "the partition key is not valid Unicode") from None
            if properties is not last_properties or properties is None:
                last_properties, last_encoded = properties, encode_properties(index, properties)
            prepared.append((body, partition_key, last_encoded))
        return prepared

    def _append(
        self,
        connection: sqlite3.Connection,
        hub_id: int,
        partition_count: int,
        prepared: Sequence[tuple[bytes, str | None, str | None]],
        partition_id: int | None,
    ) -> tuple[list[Position], frozenset[int]]:
        # Each SQLite call may wait a switch interval for the GIL beside a busy thread, so the
        # partitions' state comes back as one aggregated row, and is written back in one upsert.
        packed, next_round_robin = connection.execute(
            "SELECT group_concat(partition || ':' || next_sequence || ':' || next_offset || ':' "
            "|| last_enqueued_us, ','), (SELECT round_robin FROM hubs WHERE id = ?1) "
            "FROM partitions WHERE hub_id = ?1",
            (hub_id,),
        ).fetchone()
        state = {}
        for entry in packed.split(","):
            partition_text, sequence_text, offset_text, last_text = entry.split(":")
            state[int(partition_text)] = [int(sequence_text), int(offset_text), int(last_text)]
        # One enqueued time per batch, never earlier than a partition's last one, so that
        # enqueued times never go backwards within a partition even if the clock does.
        enqueued_us = max(time.time_ns() // 1000, max(s[2] for s in state.values()))
        enqueued_time = from_micros(enqueued_us)
        round_robin: int | None = None
        by_partition: dict[int, list[tuple[bytes, str | None, str | None]]] = {}
        starts: dict[int, tuple[int, int]] = {}  # each partition's first new sequence, offset
        positions = []
        for event in prepared:
            body, partition_key = event[0], event[1]
            if partition_id is not None:
                partition = partition_id
            elif partition_key is not None:
                partition = partition_for_key(partition_key, partition_count)
            else:
                if round_robin is None:
                    round_robin = int(next_round_robin)
                partition = round_robin % partition_count
                round_robin += 1
            slot = state[partition]
            sequence, offset = slot[0], slot[1]
            slot[0] = sequence + 1
            slot[1] = offset + len(body) + RECORD_HEADER_BYTES
            positions.append(Position(partition, sequence, offset, enqueued_time))
            events = by_partition.get(partition)
            if events is None:
                events = by_partition[partition] = []
                starts[partition] = (sequence, offset)
            events.append(event)
        rows = []
        for partition, events in by_partition.items():
            sequence, offset = starts[partition]
            for indexes in segments.runs([len(event[0]) for event in events]):
                chosen = events[indexes.start : indexes.stop]
                segment = segments.encode(
                    sequence + indexes.start,
                    offset,
                    enqueued_us,
                    [event[0] for event in chosen],
                    [event[1] for event in chosen],
                    [event[2] for event in chosen],
                )
                rows.append((hub_id, partition, *segment))
                offset = segment.last_offset + len(chosen[-1][0]) + RECORD_HEADER_BYTES
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            some = rows[start : start + _ROWS_PER_INSERT]
            connection.execute(
                INSERT_SEGMENTS + ", ".join([SEGMENT_ROW] * len(some)),
                [value for row in some for value in row],
            )
        touched = frozenset(by_partition)
        connection.execute(
            "INSERT INTO partitions VALUES "
            + ", ".join(["(?, ?, ?, ?, ?)"] * len(touched))
            + " ON CONFLICT (hub_id, partition) DO UPDATE SET "
            "next_sequence = excluded.next_sequence, next_offset = excluded.next_offset, "
            "last_enqueued_us = excluded.last_enqueued_us",
            [
                value
                for p in sorted(touched)
                for value in (hub_id, p, state[p][0], state[p][1], enqueued_us)
            ],
        )
        if round_robin is not None:
            connection.execute(
                "UPDATE hubs SET round_robin = ? WHERE id = ?", (round_robin % (1 << 62), hub_id)
            )
        return positions, touched

    # reading ---------------------------------------------------------------------------

    def read(
        self, hub: str, partition: int, after_sequence: int = -1, max_count: int = 100
    ) -> list[StoredEvent]:
        """Up to `max_count` events of a partition with sequence numbers after `after_sequence`,
        in order. An unknown hub has no events."""
        key = hub_key(hub)
        found = self._db.find_hub(key)
        if found is None:
            return []
        check_partition(key, found[1], partition)
        events: list[StoredEvent] = []
        if max_count <= 0:
            return events
        with self._db.errors():
            cursor = self._db.connection().execute(
                # From the segment holding the event after `after_sequence` (none: the first).
                "SELECT first_sequence, first_offset, enqueued_us, lengths, bodies, "
                "partition_keys, properties FROM segments "
                "WHERE hub_id = ?1 AND partition = ?2 AND first_sequence >= COALESCE("
                "(SELECT MAX(first_sequence) FROM segments WHERE hub_id = ?1 "
                "AND partition = ?2 AND first_sequence <= ?3 + 1), 0) "
                "ORDER BY first_sequence",
                (found[0], partition, after_sequence),
            )
            try:
                for first, first_offset, enqueued_us, lengths, bodies, keys, props in cursor:
                    events += segments.decode(
                        partition,
                        from_micros(enqueued_us),
                        first,
                        first_offset,
                        lengths,
                        bodies,
                        keys,
                        props,
                        after_sequence,
                        max_count - len(events),
                    )
                    if len(events) >= max_count:
                        break
            finally:
                cursor.close()
        return events

    def last_sequence_numbers(self, hub: str) -> list[int]:
        """Per partition, the sequence number of the newest event (-1 if none yet)."""
        hub_id, _ = self._db.existing_hub(hub_key(hub))
        with self._db.errors():
            rows = (
                self._db.connection()
                .execute(
                    "SELECT next_sequence - 1 FROM partitions WHERE hub_id = ? ORDER BY partition",
                    (hub_id,),
                )
                .fetchall()
            )
        return [int(row[0]) for row in rows]

    def last_sequence_before(self, hub: str, partition: int, moment: datetime) -> int:
        """The sequence number of the partition's last retained event enqueued before `moment`
        (-1 if none): reading after it starts at the first event enqueued at or after it."""
        hub_id, partition_count = self._db.existing_hub(hub_key(hub))
        check_partition(hub, partition_count, partition)
        with self._db.errors():
            row = (
                self._db.connection()
                .execute(
                    "SELECT last_sequence FROM segments WHERE hub_id = ? AND partition = ? "
                    "AND enqueued_us < ? ORDER BY first_sequence DESC LIMIT 1",
                    (hub_id, partition, to_micros(moment)),
                )
                .fetchone()
            )
        return int(row[0]) if row else -1

    def partition_info(self, hub: str, partition: int) -> PartitionInfo:
        """The partition's first and last retained events."""
        hub_id, partition_count = self._db.existing_hub(hub_key(hub))
        check_partition(hub, partition_count, partition)
        with self._db.errors():
            connection = self._db.connection()
            next_sequence, next_offset, last_us = connection.execute(
                "SELECT next_sequence, next_offset, last_enqueued_us FROM partitions "
                "WHERE hub_id = ? AND partition = ?",
                (hub_id, partition),
            ).fetchone()
            first = connection.execute(
                "SELECT first_sequence FROM segments WHERE hub_id = ? AND partition = ? "
                "ORDER BY first_sequence LIMIT 1",
                (hub_id, partition),
            ).fetchone()
            last = connection.execute(
                "SELECT last_offset FROM segments WHERE hub_id = ? AND partition = ? "
                "ORDER BY first_sequence DESC LIMIT 1",
                (hub_id, partition),
            ).fetchone()
        return PartitionInfo(
            hub=hub_key(hub),
            partition=partition,
            beginning_sequence_number=int(first[0]) if first else int(next_sequence),
            last_enqueued_sequence_number=int(next_sequence) - 1,
            last_enqueued_offset=int(last[0]) if last else int(next_offset),
            last_enqueued_time=from_micros(int(last_us)) if next_sequence else None,
            is_empty=first is None,
        )

    # checkpoints -----------------------------------------------------------------------

    def checkpoints(self, hub: str, consumer_group: str) -> dict[int, Checkpoint]:
        """The consumer group's checkpoint in each partition that has one."""
        group = group_key(consumer_group)
        found = self._db.find_hub(hub_key(hub))
        if found is None:
            return {}
        hub_id = found[0]
        with self._db.errors():
            rows = (
                self._db.connection()
                .execute(
                    "SELECT partition, sequence_number, offset, updated_us FROM checkpoints "
                    "WHERE hub_id = ? AND consumer_group = ?",
                    (hub_id, group),
                )
                .fetchall()
            )
        return {
            int(partition): Checkpoint(int(sequence), int(offset), from_micros(int(updated)))
            for partition, sequence, offset, updated in rows
        }

    def set_checkpoint(
        self, hub: str, consumer_group: str, partition: int, sequence_number: int, offset: int
    ) -> None:
        """Record that the group finished with the partition's events up to `sequence_number`."""
        group = group_key(consumer_group)
        hub_id, partition_count = self._db.existing_hub(hub_key(hub))
        check_partition(hub, partition_count, partition)
        connection = self._db.connection()
        with self._db.errors():
            # A checkpoint need not survive a power loss (the events would only be delivered
            # again), so it skips the fsync; the next append's sync makes it durable anyway.
            connection.execute("PRAGMA synchronous=NORMAL")
            try:
                connection.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (hub_id, consumer_group, partition) DO UPDATE SET "
                    "sequence_number = excluded.sequence_number, offset = excluded.offset, "
                    "updated_us = excluded.updated_us",
                    (hub_id, group, partition, sequence_number, offset, time.time_ns() // 1000),
                )
            finally:
                connection.execute("PRAGMA synchronous=FULL")

    # retention -------------------------------------------------------------------------

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete events enqueued longer ago than the retention period; return how many.

        Deletes in chunks so that writers never wait long for the lock. Sequence numbers
        carry on after a purge; consumers behind it resume at the oldest retained event.
        Deleted bodies are overwritten (`secure_delete`) and the write-ahead log is emptied
        afterwards, so expired events, raw personal data included, leave the disk.
        """
        retention_us = int(self.settings.retention.total_seconds() * 1_000_000)
        cutoff = to_micros(now or datetime.now(UTC)) - retention_us
        connection = self._db.connection()
        deleted = 0
        with self._db.errors():
            bounds = connection.execute(
                "SELECT p.hub_id, p.partition, p.next_sequence, "
                "(SELECT MIN(first_sequence) FROM segments s "
                "WHERE s.hub_id = p.hub_id AND s.partition = p.partition) FROM partitions p"
            ).fetchall()
            for hub_id, partition, next_sequence, first in bounds:
                if first is None:
                    continue
                # A segment's events share its enqueued time, and enqueued times never go
                # backwards in a partition: the expired events are whole leading segments.
                keep = connection.execute(
                    "SELECT first_sequence FROM segments WHERE hub_id = ? AND partition = ? "
                    "AND enqueued_us >= ? ORDER BY first_sequence LIMIT 1",
                    (hub_id, partition, cutoff),
                ).fetchone()
                end = int(keep[0]) if keep else int(next_sequence)
                for low in range(int(first), end, _PURGE_CHUNK):
                    with self._db.transaction(connection):
                        (count,) = connection.execute(
                            "SELECT COALESCE(SUM(last_sequence - first_sequence + 1), 0) "
                            "FROM segments WHERE hub_id = ? AND partition = ? "
                            "AND first_sequence < ?",
                            (hub_id, partition, min(end, low + _PURGE_CHUNK)),
                        ).fetchone()
                        connection.execute(
                            "DELETE FROM segments WHERE hub_id = ? AND partition = ? "
                            "AND first_sequence < ?",
                            (hub_id, partition, min(end, low + _PURGE_CHUNK)),
                        )
                        deleted += int(count)
            if deleted or self._wal_holds_purged:
                # The WAL still holds the page images the deletes replaced, raw bodies included.
                self._wal_holds_purged = not self._db.truncate_wal(connection)
                if self._wal_holds_purged:
                    log.info("%s: a reader kept the WAL from being emptied; next purge", self.path)
        return deleted
