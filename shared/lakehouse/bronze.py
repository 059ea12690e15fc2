"""Land batches in bronze Delta tables exactly once per hub position.

Each commit carries a Delta application transaction (`txn`): the app id names the hub,
consumer group and partition, the version is the last sequence number of the batch. A
redelivered batch finds its rows already covered by the table's `txn` version and adds
nothing; this is how Spark Structured Streaming writes idempotently to Delta.

With `direct_log` (which the composition root sets for a local lake), appends go straight to
the Delta log (`delta_append.LocalDeltaLog`): a deltalake commit costs 3-7 ms plus ~0.1 ms
per commit since its handle was opened, more than the rest of a 1,000-event batch. deltalake
still creates, evolves and compacts the tables, writes a table with features the direct
appender does not write (that table alone falls back), and writes them on ADLS. There, table
handles are opened once and reused, and reopened every `REOPEN_AFTER` commits (past a
checkpoint) to keep that replay short; the `txn` versions are cached per handle, and the
cache is dropped whenever the handle catches up with commits of another writer. A commit
racing another writer of the same app id fails with a conflict: the writer then refreshes,
drops what the other landed, and tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from shared.lakehouse.access import LakeAccess, StaticAccess
from shared.lakehouse.bronze_schema import BRONZE, PARTITION_COLUMN, TABLE_CONFIGURATION
from shared.lakehouse.delta_append import (
    ConcurrentCommit,
    DataFile,
    LocalDeltaLog,
    TableChanged,
    UnsupportedTable,
)
from shared.lakehouse.lease import TableBusy, TableLeases
from shared.lakehouse.tables import open_table

log = logging.getLogger(__name__)

RowsAfter = Callable[[int | None], pa.Table | None]
REOPEN_AFTER = 100  # deltalake's default checkpoint interval
MAX_CONCURRENT_COMMITS = 100  # versions lost to other writers before a call gives up


class LakeWriteFailed(RuntimeError):
    """A bronze commit kept failing; the batch must be delivered again."""


@dataclass(frozen=True)
class Landed:
    """What one `land` call committed: rows added (0 if all were landed before)."""

    table: str
    rows: int
    version: int | None


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
            if entry.handle is None:
                self._adopt(entry, table, self._open(table, entry.options))
            if entry.log is not None:
                return entry.log.landed(app_id)
            return None if entry.handle is None else entry.version_of(app_id)

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
        request = _Request(app_id, version, rows_after, schema)
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

    def _commit_group(self, entry: _Table, table: str, group: list[_Request]) -> None:
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

    def _commit_once(self, entry: _Table, table: str, group: list[_Request]) -> None:
        self._refresh_access(entry)
        if entry.handle is None:
            options = entry.options
            opened = self._open(table, options) or self._create(table, group[0].schema, options)
            self._adopt(entry, table, opened)
        if entry.log is not None:
            try:
                if self._append(entry.log, table, group):
                    return
            except UnsupportedTable as reason:
                log.warning(
                    "bronze/%s: appends go through deltalake from now on (%s)", table, reason
                )
                entry.direct = False  # this table only, under its lock
                entry.forget()
                self._adopt(entry, table, self._open(table, entry.options))
        handle = entry.handle
        assert handle is not None
        if entry.log is not None:  # the handle is behind the direct appends
            handle.update_incremental()
            entry.versions.clear()
        parts, results = _parts(table, group, entry.version_of)
        if parts:
            data = _concat([rows for _, rows in parts])
            before = handle.version()
            evolve = data.schema.names != entry.columns
            transactions = [Transaction(a, v) for a, v in _transactions(parts).items()]
            write_deltalake(
                handle,
                data,
                mode="append",
                schema_mode="merge" if evolve else None,
                commit_properties=CommitProperties(app_transactions=transactions),
            )
            if handle.version() != before + 1:
                entry.versions.clear()  # the handle caught up with other writers' commits
            if evolve:
                entry.columns = _columns(handle)
            entry.versions.update(_transactions(parts))
            for request, rows in parts:
                results[id(request)] = Landed(table, rows.num_rows, request.version)
            if entry.log is not None or handle.version() - entry.opened >= REOPEN_AFTER:
                # Reload: the direct log must see the new schema; a long-lived deltalake
                # handle replays every commit since it was opened on each new one.
                entry.forget()
        for request in group:
            request.result = results[id(request)]

    def _append(self, log: LocalDeltaLog, table: str, group: list[_Request]) -> bool:
        """Commit the group straight to the log; False if deltalake must write it (the
        schema evolves). When another writer commits first, the same files go in the next
        version, unless it landed some of the group's app ids: then the rows are rebuilt."""
        files: list[DataFile] = []
        seen: list[int | None] | None = None
        parts: list[tuple[_Request, pa.Table]] = []
        results: dict[int, Landed] = {}
        try:
            for _ in range(MAX_CONCURRENT_COMMITS):
                landed = [log.landed(request.app_id) for request in group]
                if landed != seen:
                    log.discard(files)
                    files, seen = [], landed
                    parts, results = _parts(table, group, log.landed)
                    if parts:
                        data = _concat([rows for _, rows in parts])
                        if not log.accepts(data):
                            return False
                        files = log.write(data)
                if parts:
                    try:
                        log.commit(files, list(_transactions(parts).items()))
                    except ConcurrentCommit:
                        continue
                    files = []
                    for request, rows in parts:
                        results[id(request)] = Landed(table, rows.num_rows, request.version)
                for request in group:
                    request.result = results[id(request)]
                return True
        finally:
            log.discard(files)
        raise LakeWriteFailed(
            f"bronze/{table}: {MAX_CONCURRENT_COMMITS} other commits came first; giving up"
        )

    def _table(self, table: str) -> _Table:
        with self._guard:
            entry = self._tables.get(table)
            if entry is None:
                entry = self._tables[table] = _Table(direct=self._direct_log)
            return entry

    def _refresh_access(self, entry: _Table) -> None:
        options, generation = self._access.current()
        if generation != entry.generation or entry.handle is None:
            entry.forget()  # new credentials: reopen the handle with them
            entry.options, entry.generation = options, generation

    def _adopt(self, entry: _Table, table: str, handle: DeltaTable | None) -> None:
        entry.handle = handle
        entry.log = None
        if handle is None:
            return
        entry.opened = handle.version()
        if entry.direct:
            try:
                entry.log = LocalDeltaLog(Path(self.uri(table).removeprefix("file://")), handle)
            except UnsupportedTable as reason:
                log.info("bronze/%s: appends go through deltalake (%s)", table, reason)

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


class _Request:
    """One `land` call waiting for its commit."""

    def __init__(self, app_id: str, version: int, rows_after: RowsAfter, schema: pa.Schema):
        self.app_id = app_id
        self.version = version
        self.rows_after = rows_after
        self.schema = schema
        self.result: Landed | None = None
        self.error: BaseException | None = None


class _Table:
    """A reused handle, its columns, the txn versions known for it, and the calls waiting."""

    def __init__(self, direct: bool) -> None:
        self.direct = direct  # appends go straight to the log (until the table needs deltalake)
        self.lock = threading.Lock()  # held while committing
        self.queue_lock = threading.Lock()
        self.queue: list[_Request] = []
        self.handle: DeltaTable | None = None
        self.opened = 0  # the handle's version when it was opened
        self.log: LocalDeltaLog | None = None
        self.options: dict[str, str] | None = None
        self.generation = -1
        self.versions: dict[str, int | None] = {}
        self.columns: list[str] = []

    def version_of(self, app_id: str) -> int | None:
        assert self.handle is not None
        if not self.columns:
            self.columns = _columns(self.handle)
        if app_id not in self.versions:
            self.versions[app_id] = self.handle.transaction_version(app_id)
        return self.versions[app_id]

    def forget(self) -> None:
        self.handle = None
        self.log = None
        self.versions.clear()
        self.columns = []


def _parts(
    table: str, group: list[_Request], landed_of: Callable[[str], int | None]
) -> tuple[list[tuple[_Request, pa.Table]], dict[int, Landed]]:
    """The rows each request still has to land, and the results of those with none.

    Requests of one app id in the same group (a redelivery racing its original) see what the
    earlier ones add: the app id's state is carried forward, so no row is landed twice.
    """
    parts: list[tuple[_Request, pa.Table]] = []
    results: dict[int, Landed] = {}
    carried: dict[str, int | None] = {}
    for request in group:
        landed = carried[request.app_id] if request.app_id in carried else landed_of(request.app_id)
        rows = None
        if landed is None or landed < request.version:
            rows = request.rows_after(landed)
        if rows is None or rows.num_rows == 0:
            results[id(request)] = Landed(table, 0, landed)
        else:
            parts.append((request, rows))
            landed = request.version
        carried[request.app_id] = landed
    return parts, results


def _transactions(parts: list[tuple[_Request, pa.Table]]) -> dict[str, int]:
    """One `txn` per app id (Delta allows no more in a commit): the group's last version."""
    versions: dict[str, int] = {}
    for request, _ in parts:
        versions[request.app_id] = max(request.version, versions.get(request.app_id, -1))
    return versions


def _columns(handle: DeltaTable) -> list[str]:
    return [field.name for field in handle.schema().fields]


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")
