"""The bronze appending port and its two adapters: one group commit of one table, with each app
id's Delta `txn`.

- `DirectLogAppender` writes Parquet and the commit JSON straight into a local table's
  `_delta_log` (`delta_append.LocalDeltaLog`): a deltalake commit costs 3-7 ms plus ~0.1 ms per
  commit since its handle was opened, more than the rest of a 1,000-event batch.
- `DeltalakeAppender` commits through deltalake: on ADLS, for schema changes, and for tables
  with features the direct appender does not write. Its handle is reused, and reopened every
  `REOPEN_AFTER` commits (past a checkpoint) to keep deltalake's replay short; the `txn`
  versions are cached per handle, and the cache is dropped whenever the handle catches up with
  commits of another writer.

The writer (`bronze.BronzeWriter`) chooses them (the composition root says whether the lake
takes direct appends), groups calls, and retries; an adapter only commits what it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from shared.lakehouse.delta_append import ConcurrentCommit, DataFile, LocalDeltaLog

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


class PendingLand:
    """One `land` call waiting for its commit: its app id and txn version, the rows it still
    has to add once the app id's landed version is known, and then its result or error."""

    def __init__(self, app_id: str, version: int, rows_after: RowsAfter, schema: pa.Schema):
        self.app_id = app_id
        self.version = version
        self.rows_after = rows_after
        self.schema = schema
        self.result: Landed | None = None
        self.error: BaseException | None = None


class TableAppender(Protocol):
    """The port: one bronze table's appends."""

    def landed(self, app_id: str) -> int | None:
        """The last version (sequence number) the app id has landed in the table."""
        ...

    def append(self, group: list[PendingLand]) -> bool:
        """Commit the group's rows in one commit with each app id's txn, and set each call's
        result; False when this adapter cannot write them (nothing was committed)."""
        ...


class DirectLogAppender:
    """Appends straight to a local table's Delta log."""

    def __init__(self, table: str, log: LocalDeltaLog) -> None:
        self.table = table
        self.log = log

    def landed(self, app_id: str) -> int | None:
        return self.log.landed(app_id)

    def append(self, group: list[PendingLand]) -> bool:
        """False when deltalake must write the rows (their schema evolves). When another
        writer commits first, the same files go in the next version, unless it landed some
        of the group's app ids: then the rows are rebuilt."""
        log = self.log
        files: list[DataFile] = []
        seen: list[int | None] | None = None
        parts: list[tuple[PendingLand, pa.Table]] = []
        results: dict[int, Landed] = {}
        try:
            for _ in range(MAX_CONCURRENT_COMMITS):
                landed = [log.landed(request.app_id) for request in group]
                if landed != seen:
                    log.discard(files)
                    files, seen = [], landed
                    parts, results = rows_to_land(self.table, group, log.landed)
                    if parts:
                        data = concat([rows for _, rows in parts])
                        if not log.accepts(data):
                            return False
                        files = log.write(data)
                if parts:
                    try:
                        log.commit(files, list(transactions(parts).items()))
                    except ConcurrentCommit:
                        continue
                    files = []
                    for request, rows in parts:
                        results[id(request)] = Landed(self.table, rows.num_rows, request.version)
                for request in group:
                    request.result = results[id(request)]
                return True
        finally:
            log.discard(files)
        raise LakeWriteFailed(
            f"bronze/{self.table}: {MAX_CONCURRENT_COMMITS} other commits came first; giving up"
        )


class DeltalakeAppender:
    """Appends through a deltalake handle, reused across commits."""

    def __init__(self, table: str, handle: DeltaTable) -> None:
        self.table = table
        self.handle = handle
        self.opened = handle.version()
        self._versions: dict[str, int | None] = {}
        self._columns: list[str] = []
        # Set when commits go around this handle (the direct appender's): catch up first.
        self.behind = False

    def landed(self, app_id: str) -> int | None:
        if not self._columns:
            self._columns = _columns(self.handle)
        if app_id not in self._versions:
            self._versions[app_id] = self.handle.transaction_version(app_id)
        return self._versions[app_id]

    def append(self, group: list[PendingLand]) -> bool:
        handle = self.handle
        if self.behind:
            handle.update_incremental()
            self._versions.clear()
        parts, results = rows_to_land(self.table, group, self.landed)
        if parts:
            data = concat([rows for _, rows in parts])
            before = handle.version()
            evolve = data.schema.names != self._columns
            versions = transactions(parts)
            write_deltalake(
                handle,
                data,
                mode="append",
                schema_mode="merge" if evolve else None,
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(a, v) for a, v in versions.items()]
                ),
            )
            if handle.version() != before + 1:
                self._versions.clear()  # the handle caught up with other writers' commits
            if evolve:
                self._columns = _columns(handle)
            self._versions.update(versions)
            for request, rows in parts:
                results[id(request)] = Landed(self.table, rows.num_rows, request.version)
        for request in group:
            request.result = results[id(request)]
        return True

    @property
    def stale(self) -> bool:
        """Whether the handle should be reopened: the direct appender must see a new schema,
        and a long-lived deltalake handle replays every commit since it was opened."""
        return self.behind or self.handle.version() - self.opened >= REOPEN_AFTER


def rows_to_land(
    table: str, group: list[PendingLand], landed_of: Callable[[str], int | None]
) -> tuple[list[tuple[PendingLand, pa.Table]], dict[int, Landed]]:
    """The rows each call still has to land, and the results of those with none.

    Calls of one app id in the same group (a redelivery racing its original) see what the
    earlier ones add: the app id's state is carried forward, so no row is landed twice.
    """
    parts: list[tuple[PendingLand, pa.Table]] = []
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


def transactions(parts: list[tuple[PendingLand, pa.Table]]) -> dict[str, int]:
    """One `txn` per app id (Delta allows no more in a commit): the group's last version."""
    versions: dict[str, int] = {}
    for request, _ in parts:
        versions[request.app_id] = max(request.version, versions.get(request.app_id, -1))
    return versions


def concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


def _columns(handle: DeltaTable) -> list[str]:
    return [field.name for field in handle.schema().fields]
