"""One maintenance job per table at a time, across threads, processes and instances.

deltalake (1.6) lets two OPTIMIZE commits that read the same version both commit, each removing
the same files and adding its own rewrite of them: the table then holds those rows twice. Its
conflict checker passes concurrent removes with `dataChange=false` (delta-rs#3982). So every
job that rewrites a table's files (compaction, Z-order, vacuum) holds the table's lease first.

A lease lives in a small Delta table of its own, `<lake>/_maintenance/<layer>/<table>`, and is
taken by committing the next version of it with no retries: Delta's put-if-absent commit lets
exactly one of two racing jobs win, on a local folder as on ADLS Gen2, so the same code guards
two devhosts on one machine and two instances in Azure. Each commit states the holder and when
the lease expires (in its commit info); the holder renews it while the job runs, so a crashed
job blocks the table for one `ttl` at most, and releases it at the end.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from shared.lakehouse.access import LakeAccess, StaticAccess
from shared.lakehouse.tables import open_table

log = logging.getLogger(__name__)

LEASES = "_maintenance"
DEFAULT_TTL_S = 60.0
_SCHEMA = pa.schema([pa.field("holder", pa.string())])
_HOLDER, _EXPIRES = "leaseHolder", "leaseExpiresMs"
_RELEASED = "released"
# Only the last commit matters: old ones go after a day (at the checkpoint every 100 commits).
_CONFIGURATION = {"delta.logRetentionDuration": "interval 1 days"}
_ATTEMPTS = 5  # lost commit races before an acquire reports the table busy


class TableBusy(RuntimeError):
    """Another job holds the table's maintenance lease."""

    def __init__(self, table: str, holder: str, expires_ms: int) -> None:
        left = max(0.0, expires_ms / 1000 - time.time())
        super().__init__(f"{table}: maintained by {holder} (lease expires in {left:.0f} s)")
        self.holder = holder


@dataclass(frozen=True)
class _State:
    version: int
    holder: str | None  # None: free (released, expired or never taken)
    expires_ms: int


class TableLeases:
    """Leases for the tables under a lake root: `with leases.hold("bronze", table): ...`."""

    def __init__(
        self,
        root: str,
        access: LakeAccess | None = None,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root.rstrip("/")
        self._access = access or StaticAccess()
        self._ttl_s = ttl_s
        self._clock = clock
        self._process = f"{socket.gethostname()} pid {os.getpid()}"

    def uri(self, layer: str, table: str) -> str:
        return f"{self.root}/{LEASES}/{layer}/{table}"

    @contextmanager
    def hold(self, layer: str, table: str) -> Iterator[None]:
        """Hold the table's lease for the block; raises TableBusy if another job holds it
        (another thread of this process included: each hold is a job of its own)."""
        name = f"{layer}/{table}"
        owner = f"{self._process} job {uuid.uuid4().hex[:8]}"
        handle = self._acquire(name, self.uri(layer, table), owner)
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(name, handle, owner, stop), name=f"lease {name}", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            if self._state(handle).holder == owner:
                self._commit(handle, {_HOLDER: owner, _RELEASED: "true", _EXPIRES: "0"})

    def _acquire(self, name: str, uri: str, owner: str) -> DeltaTable:
        handle = self._open(uri)
        for _ in range(_ATTEMPTS):
            state = self._state(handle)
            if state.holder is not None:
                raise TableBusy(name, state.holder, state.expires_ms)
            if self._commit(handle, self._claim(owner)):
                return handle
        state = self._state(handle)
        raise TableBusy(name, state.holder or "another job", state.expires_ms)

    def _renew(self, name: str, handle: DeltaTable, owner: str, stop: threading.Event) -> None:
        while not stop.wait(self._ttl_s / 3):
            state = self._state(handle)
            if state.holder != owner or not self._commit(handle, self._claim(owner)):
                log.error("%s: the maintenance lease was lost while the job ran", name)
                return

    def _claim(self, owner: str) -> dict[str, str]:
        expires = int((self._clock() + self._ttl_s) * 1000)
        return {_HOLDER: owner, _EXPIRES: str(expires)}

    def _commit(self, handle: DeltaTable, metadata: dict[str, str]) -> bool:
        """Commit the next version of the lease table; False if another job took it."""
        properties = CommitProperties(custom_metadata=metadata, max_commit_retries=0)
        try:
            handle.create_write_transaction([], "append", _SCHEMA, commit_properties=properties)
        except CommitFailedError:
            return False
        return True

    def _state(self, handle: DeltaTable) -> _State:
        handle.update_incremental()
        last = handle.history(1)[0]
        holder = last.get(_HOLDER)
        expires = int(last.get(_EXPIRES) or 0)
        if holder is None or last.get(_RELEASED) or expires <= self._clock() * 1000:
            return _State(handle.version(), None, expires)
        return _State(handle.version(), str(holder), expires)

    def _open(self, uri: str) -> DeltaTable:
        options, _ = self._access.current()
        try:
            return open_table(uri, storage_options=options)
        except TableNotFoundError:
            pass
        try:
            DeltaTable.create(
                uri,
                _SCHEMA,
                mode="ignore",
                configuration=_CONFIGURATION,
                storage_options=options,
            )
        except DeltaError:  # another job created it meanwhile
            pass
        return open_table(uri, storage_options=options)
