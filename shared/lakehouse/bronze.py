"""Land batches in bronze Delta tables exactly once per hub position.

Each commit carries a Delta application transaction (`txn`): the app id names the hub,
consumer group and partition, the version is the last sequence number of the batch. A
redelivered batch finds its rows already covered by the table's `txn` version and adds
nothing; this is how Spark Structured Streaming writes idempotently to Delta.

How a group is committed is the appending port's (`bronze_append`): straight to the Delta
log of a local lake (`direct_log`, which the composition root sets), or through deltalake
(on ADLS, for schema changes, and for a table with features the direct appender does not
write: that table alone falls back). A commit racing another writer of the same app id fails
with a conflict: the writer then refreshes, drops what the other landed, and tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from shared.lakehouse.access import LakeAccess, StaticAccess
from shared.lakehouse.bronze_append import (
    DeltalakeAppender,
    DirectLogAppender,
    LakeWriteFailed,
    Landed,
    PendingLand,
    RowsAfter,
)
from shared.lakehouse.bronze_schema import BRONZE, PARTITION_COLUMN, TABLE_CONFIGURATION
from shared.lakehouse.delta_append import LocalDeltaLog, TableChanged, UnsupportedTable
from shared.lakehouse.lease import TableBusy, TableLeases
from shared.lakehouse.tables import open_table

__all__ = ["BronzeWriter", "LakeWriteFailed", "Landed", "RowsAfter"]
log = logging.getLogger(__name__)


class BronzeWriter:
    """Appends to `<lake>/bronze/<table>`, one commit per call, idempotent per app id.

    Thread-safe: calls for the same table are serialized; different tables commit in parallel.
    """

    def __init__(
        self,
        root: str,
        access: LakeAccess | None = None,
        *,
        configuration: Mapping[str, str] = TABLE_CONFIGURATION,
        max_attempts: int = 5,
        retry_delay_s: float = 0.05,
        direct_log: bool = False,
    ) -> None:
        """`direct_log`: append straight to the Delta log, which needs a local lake."""
        self.root = root.rstrip("/")
        if direct_log and "://" in self.root.removeprefix("file://"):
            raise ValueError(f"the direct Delta log appender needs a local lake, not {root!r}")
        self._direct_log = direct_log
        self._access = access or StaticAccess()
        self._configuration = dict(configuration)
        self._max_attempts = max_attempts
        self._retry_delay_s = retry_delay_s
        self._leases = TableLeases(self.root, self._access)
        self._tables: dict[str, _Table] = {}
        self._guard = threading.Lock()

    def uri(self, table: str) -> str:
        return f"{self.root}/{BRONZE}/{table}"

    def landed_version(self, table: str, app_id: str) -> int | None:
        """The last sequence number landed for app_id in the table (None: nothing yet)."""
        entry = self._table(table)
        with entry.lock:
            self._refresh_access(entry)
            if entry.deltalake is None:
                self._adopt(entry, table, self._open(table, entry.options))
            appender = entry.appender
            return None if appender is None else appender.landed(app_id)

    def land(
        self, table: str, schema: pa.Schema, app_id: str, version: int, rows_after: RowsAfter
    ) -> Landed:
        """Commit `rows_after(landed)` with txn (app_id, version), where `landed` is the app id's
        last landed sequence number; `rows_after` returns None when nothing is left to add.

        Group commit: calls for the same table that arrive while a commit runs (other
        partitions, in other threads) are landed together by the next one, in one Delta commit
        carrying each app id's txn, so that concurrent partitions share the commit's cost.
        """
        entry = self._table(table)
        request = PendingLand(app_id, version, rows_after, schema)
        with entry.queue_lock:
            entry.queue.append(request)
        with entry.lock:
            if request.result is None and request.error is None:
                with entry.queue_lock:
                    group, entry.queue = entry.queue, []
                self._commit_group(entry, table, group)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def compact(self, table: str) -> dict[str, Any] | None:
        """Rewrite the table's small files into larger ones; None if it does not exist yet.

        Each batch adds a file per table, and every reader of the table (silver, queries)
        pays for each file, so bronze is compacted regularly. Uses a handle of its own:
        ingestion goes on meanwhile (its next commit sees the compaction as another writer's).
        Holds the table's maintenance lease: another compaction running (another process or
        instance) skips this one, reported as `{"skipped": reason}` with no files changed.
        """
        options, _ = self._access.current()
        handle = self._open(table, options)
        if handle is None:
            return None
        try:
            with self._leases.hold(BRONZE, table):
                handle.update_incremental()  # what the lease's previous holder committed
                metrics: dict[str, Any] = handle.optimize.compact()
        except TableBusy as busy:
            return {"numFilesAdded": 0, "numFilesRemoved": 0, "skipped": str(busy)}
        return metrics

    def _commit_group(self, entry: _Table, table: str, group: list[PendingLand]) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._commit_once(entry, table, group)
                return
            except (CommitFailedError, DeltaError, OSError, TableChanged) as error:
                log.warning("bronze/%s: commit attempt %d failed: %s", table, attempt, error)
                entry.forget()  # refresh from the log: another writer may have landed rows
                if attempt == self._max_attempts:
                    failure = LakeWriteFailed(
                        f"bronze/{table}: commit failed {attempt} times: {error}"
                    )
                    failure.__cause__ = error
                    for request in group:
                        request.error = failure
                    return
                time.sleep(self._retry_delay_s * 2 ** (attempt - 1))
            except Exception as error:  # not the lake: one call's rows (bad data, a bug)
                if len(group) == 1:
                    group[0].error = error
                    return
                # Commit each call alone, so that only the one at fault fails: the others
                # are other partitions' valid batches, which a shared error would dead-letter.
                entry.forget()
                for request in group:
                    self._commit_group(entry, table, [request])
                return
            except BaseException as error:  # interrupted: every caller of the group raises
                for request in group:
                    request.error = error
                raise

    def _commit_once(self, entry: _Table, table: str, group: list[PendingLand]) -> None:
        self._refresh_access(entry)
        if entry.deltalake is None:
            options = entry.options
            opened = self._open(table, options) or self._create(table, group[0].schema, options)
            self._adopt(entry, table, opened)
        if entry.direct is not None:
            try:
                if entry.direct.append(group):
                    return
            except UnsupportedTable as reason:
                log.warning(
                    "bronze/%s: appends go through deltalake from now on (%s)", table, reason
                )
                entry.use_direct = False  # this table only, under its lock
                entry.forget()
                self._adopt(entry, table, self._open(table, entry.options))
        deltalake = entry.deltalake
        assert deltalake is not None
        deltalake.append(group)
        if deltalake.stale:
            entry.forget()

    def _table(self, table: str) -> _Table:
        with self._guard:
            entry = self._tables.get(table)
            if entry is None:
                entry = self._tables[table] = _Table(direct=self._direct_log)
            return entry

    def _refresh_access(self, entry: _Table) -> None:
        options, generation = self._access.current()
        if generation != entry.generation or entry.deltalake is None:
            entry.forget()  # new credentials: reopen the handle with them
            entry.options, entry.generation = options, generation

    def _adopt(self, entry: _Table, table: str, handle: DeltaTable | None) -> None:
        entry.deltalake = None if handle is None else DeltalakeAppender(table, handle)
        entry.direct = None
        if handle is None or not entry.use_direct:
            return
        try:
            local = LocalDeltaLog(Path(self.uri(table).removeprefix("file://")), handle)
        except UnsupportedTable as reason:
            log.info("bronze/%s: appends go through deltalake (%s)", table, reason)
            return
        entry.direct = DirectLogAppender(table, local)
        assert entry.deltalake is not None
        entry.deltalake.behind = True  # the direct appends go around the handle

    def _open(self, table: str, options: dict[str, str] | None) -> DeltaTable | None:
        try:
            return open_table(self.uri(table), storage_options=options)
        except TableNotFoundError:
            return None

    def _create(self, table: str, schema: pa.Schema, options: dict[str, str] | None) -> DeltaTable:
        DeltaTable.create(
            self.uri(table),
            schema,
            mode="ignore",  # another writer may have created it meanwhile
            partition_by=[PARTITION_COLUMN],
            configuration=self._configuration,
            storage_options=options,
        )
        return open_table(self.uri(table), storage_options=options)


class _Table:
    """One table's appenders (built on first use, with the access options they were built
    with), and the calls waiting for the next group commit."""

    def __init__(self, direct: bool) -> None:
        self.use_direct = direct  # append straight to the log (until the table needs deltalake)
        self.lock = threading.Lock()  # held while committing
        self.queue_lock = threading.Lock()
        self.queue: list[PendingLand] = []
        self.deltalake: DeltalakeAppender | None = None
        self.direct: DirectLogAppender | None = None
        self.options: dict[str, str] | None = None
        self.generation = -1

    @property
    def appender(self) -> DirectLogAppender | DeltalakeAppender | None:
        """The one that knows what is landed: the direct appender sees every commit."""
        return self.direct if self.direct is not None else self.deltalake

    def forget(self) -> None:
        self.deltalake = None
        self.direct = None
