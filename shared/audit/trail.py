"""The audit trail on the document store port: one hash chain per UTC hour, one transactional
batch per record, hourly checkpoints out of the chain's reach.

- Records live in the `audit` container, partitioned by hour (`/partition`), in the format of
  `embedded.audit.chain`. Each partition's head document holds its last seq and hash.
- Records are group-committed by one writer thread: whatever is queued (up to `GROUP_LIMIT`)
  goes in one batch in the partition, the head replaced on its etag (created, for the hour's
  first record) and the records created, so concurrent requests share one commit. `append`
  waits for its record to be durable (privileged actions) and is committed at once; `submit`
  does not wait (requests), and its records gather for up to `GROUP_WINDOW_S` first, so that
  a busy host pays for one commit per window rather than one per handful of requests.
  Whoever loses a race to another writer (another trail, another instance) reads the head
  again and retries, at most `MAX_ATTEMPTS` times. Within a process commits take a lock, since
  a chain admits one writer at a time anyway; the head is cached between commits, so a lone
  writer never reads it.
- Fail closed: anything that keeps the record out of the store raises `AuditUnavailable`, and
  the caller refuses the privileged action (503).
- Closing an hour seals its head (`closed`, naming the partition that late writers, say on an
  instance whose clock lags, go on in), writes its last hash to the checkpoint store, and
  marks the head `checkpointed`. The first record of an hour closes every earlier hour still
  open; `close_hours(now)` does it for the daily timer, and picks up where a crash stopped.
- The container has no TTL: retention belongs to the governance issue.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from embedded.audit.chain import (
    HEAD,
    Head,
    genesis_hash,
    new_record,
    next_partition,
    partition_of,
    record_time,
)
from embedded.audit.checkpoints import Checkpoint
from shared.audit.checkpoints import CheckpointStore
from shared.audit.checkpoints import FileCheckpoints as FileCheckpoints  # the local adapter
from shared.audit.events import AuditEvent, AuditUnavailable
from shared.audit.fields import InvalidAuditEvent, record_fields
from shared.documents.port import (
    BatchOperation,
    Condition,
    ContainerSpec,
    DocumentConflict,
    DocumentContainer,
    DocumentNotFound,
    PreconditionFailed,
    Query,
)

log = logging.getLogger(__name__)

AUDIT_CONTAINER = ContainerSpec("audit", "/partition")
MAX_ATTEMPTS = 50
GROUP_LIMIT = 99  # records per commit: a Cosmos DB batch holds 100 operations, one the head
GROUP_WINDOW_S = 0.01  # how long submitted records gather before their commit
_WRITER_IDLE_S = 5.0  # the writer thread stops after this long without records
_MAX_BACKOFF_S = 0.05
T = TypeVar("T")


class _Pending:
    """What waits for the next group commit: a record's fields (an append's), an event whose
    fields the writer takes (a submit's, so that a request's thread only queues it), or
    neither (a flush marker). `done` is set once it is written or failed, for a waiter."""

    __slots__ = ("fields", "event", "done", "wait", "error")

    def __init__(
        self,
        fields: dict[str, Any] | None,
        event: AuditEvent | None,
        done: threading.Event | None = None,
    ) -> None:
        self.fields = fields
        self.event = event
        self.done = done
        self.wait = done is not None
        self.error: AuditUnavailable | None = None


@dataclass(frozen=True)
class _Target:
    """The partition an append goes to, its head (None: its first record) and the etag."""

    partition: str
    head: Head | None
    etag: str | None


class DocumentAuditTrail:
    """The audit trail on a document container (`AUDIT_CONTAINER`); `clock` gives seconds since
    the epoch, `checkpoints` keeps the closed hours' last hashes."""

    def __init__(
        self,
        container: DocumentContainer,
        *,
        clock: Callable[[], float] = time.time,
        checkpoints: CheckpointStore,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.container = container
        self.checkpoints = checkpoints
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._cached: _Target | None = None
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._urgent = threading.Event()  # a waiter was queued: commit without gathering
        self._waiters = 0  # waiters queued (under `_starting`)
        self._starting = threading.Lock()
        self._thread: threading.Thread | None = None
        self._flush_at_exit = False
        self.misses = 0  # submitted records the store did not take

    def append(self, event: AuditEvent) -> None:
        """Chain one record onto its hour, durably before returning (a privileged action's);
        AuditUnavailable when the store cannot take it."""
        done = threading.Event()
        pending = self._enqueue(_Pending(record_fields(event), None, done))
        done.wait()
        if pending.error is not None:
            raise pending.error

    def submit(self, event: AuditEvent) -> None:
        """Chain one record with the next group commit, without waiting for it (a request's
        record): written within a commit's time, in order; a failure is logged and counted in
        `misses`, since the request it describes has been answered already."""
        self._enqueue(_Pending(None, event))

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (or failed); False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return True
        done = threading.Event()
        with self._starting:
            self._queue.put(_Pending(None, None, done))
            self._waiters += 1
        self._urgent.set()
        return done.wait(timeout_s)

    # Group commit: one writer thread takes whatever is queued (up to a batch) and commits it
    # as one transactional batch, so concurrent requests share a commit (and its fsync).

    def _enqueue(self, pending: _Pending) -> _Pending:
        wait = pending.wait
        with self._starting:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._commit_groups, name="audit-writer", daemon=True
                )
                self._thread.start()
                if not self._flush_at_exit:  # what is queued is written before the process ends
                    atexit.register(self.flush)
                    self._flush_at_exit = True
            self._queue.put(pending)
            if wait:
                self._waiters += 1
        if wait:
            self._urgent.set()
        return pending

    def _commit_groups(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=_WRITER_IDLE_S)
            except queue.Empty:
                with self._starting:  # idle: stop, unless something arrived meanwhile
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            self._urgent.clear()
            if not first.wait and self._waiters == 0:  # let the next records join it
                self._urgent.wait(GROUP_WINDOW_S)
            group = [first]
            while len(group) < GROUP_LIMIT:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            with self._starting:
                self._waiters -= sum(1 for p in group if p.wait)
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        records = [p for p in group if self._scrubbed(p)]
        error: AuditUnavailable | None = None
        opened = None
        if records:
            try:
                with self._lock:
                    opened = self._guarded(
                        lambda: self._append([p.fields for p in records if p.fields])
                    )
            except AuditUnavailable as failed:
                error = failed
        if opened is not None:  # before the waiters go on: an hour is closed when they do
            try:
                self._close_before(opened)
            except Exception as failure:  # the records are in; the daily timer closes hours
                log.warning("audit: closing the hours before %s failed: %s", opened, failure)
        for pending in group:
            pending.error = error
            if pending.done is not None:
                pending.done.set()
        lost = sum(1 for p in records if not p.wait) if error is not None else 0
        if lost:
            with self._starting:
                self.misses += lost
            log.warning("audit: %d request records were not kept: %s", lost, error)

    def _scrubbed(self, pending: _Pending) -> bool:
        """Whether `pending` is a record, its fields taken from its event if need be (an
        event the trail cannot record is logged and counted in `misses`)."""
        if pending.event is not None:
            try:
                pending.fields = record_fields(pending.event)
            except InvalidAuditEvent as error:
                with self._starting:
                    self.misses += 1
                log.warning("audit: a request record was not kept: %s", error)
            pending.event = None
        return pending.fields is not None

    def close_hours(self, now: float | None = None) -> list[Checkpoint]:
        """Close every hour before `now`'s (default: the clock's) that is not yet checkpointed;
        the checkpoints written."""
        bound = partition_of(self._clock() if now is None else now)
        return self._guarded(lambda: self._close_before(bound))

    # Appending

    def _append(self, group: list[dict[str, Any]]) -> str | None:
        """Append a group of records, in order, under the lock; the partition, when this
        group opened it."""
        partition = ""
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                self._sleep(random.uniform(0, min(_MAX_BACKOFF_S, 0.0005 * 2**attempt)))
            now = self._clock()
            target = self._target(partition_of(now))
            partition, head = target.partition, target.head
            seq = 0 if head is None else head.last_seq
            previous = genesis_hash(partition) if head is None else head.last_hash
            records = []
            at = record_time(now)
            for fields in group:
                seq += 1
                record = new_record(partition, seq, at, fields, previous)
                previous = record["hash"]
                records.append(BatchOperation("create", document=record))
            moved = Head(partition, seq, previous)
            if head is None:  # the hour's first record
                step = BatchOperation("create", document=moved.document())
            else:
                step = BatchOperation("replace", document=moved.document(), if_match=target.etag)
            try:
                results = self.container.batch(partition, [step, *records])
            except (PreconditionFailed, DocumentConflict):  # another writer went first
                self._cached = None
                continue
            etag = (results[0] or {}).get("_etag")
            self._cached = _Target(partition, moved, etag) if isinstance(etag, str) else None
            return partition if head is None else None
        raise AuditUnavailable(
            f"the audit chain of {partition} stayed contended for {MAX_ATTEMPTS} attempts"
        )

    def _target(self, partition: str) -> _Target:
        """The open partition an append at this hour goes to: the hour's own, or, if it was
        sealed already (a clock behind the others'), the one its head names."""
        for _ in range(MAX_ATTEMPTS):
            cached = self._cached
            if cached is not None and cached.partition == partition:
                return cached
            try:
                document = self.container.read(HEAD, partition)
            except DocumentNotFound:
                return _Target(partition, None, None)
            head = Head.from_document(document)
            if head.state == "open":
                return _Target(partition, head, str(document["_etag"]))
            partition = head.next or next_partition(partition)
        raise AuditUnavailable(f"no open audit partition after {MAX_ATTEMPTS} sealed ones")

    # Closing hours

    def _close_before(self, bound: str) -> list[Checkpoint]:
        where = [
            Condition("/type", "=", HEAD),
            Condition("/partition", "<", bound),
            Condition("/state", "!=", "checkpointed"),
        ]
        query = Query(where=where, cross_partition=True, page_size=1000)
        heads: list[dict[str, Any]] = []
        continuation: str | None = None
        while True:
            page = self.container.query(query, continuation)
            heads.extend(page.documents)
            if page.continuation is None:
                break
            continuation = page.continuation
        written = []
        for document in sorted(heads, key=lambda d: str(d.get("partition"))):
            checkpoint = self._close(document, bound)
            if checkpoint is not None:
                written.append(checkpoint)
                log.info("audit: %s closed at seq %d", checkpoint.partition, checkpoint.last_seq)
        return written

    def _close(self, document: dict[str, Any], bound: str) -> Checkpoint | None:
        """Seal one head, write its checkpoint, mark it checkpointed; the checkpoint, unless
        another closer wrote it first."""
        for _ in range(MAX_ATTEMPTS):
            head = Head.from_document(document)
            if head.state == "open":
                sealed = dataclasses.replace(head, state="closed", next=bound)
                try:
                    document = self.container.replace(
                        sealed.document(), if_match=str(document["_etag"])
                    )
                except PreconditionFailed:  # a record went in meanwhile: seal the new end
                    document = self.container.read(HEAD, head.partition)
                    continue
                head = sealed
            checkpoint = Checkpoint(
                head.partition, head.last_seq, head.last_hash, record_time(self._clock())
            )
            wrote = self.checkpoints.write(checkpoint)
            done = dataclasses.replace(head, state="checkpointed")
            try:
                self.container.replace(done.document(), if_match=str(document["_etag"]))
            except PreconditionFailed:  # another closer marked it
                pass
            return checkpoint if wrote else None
        raise AuditUnavailable(f"could not seal the audit partition {document.get('partition')}")

    def _guarded(self, work: Callable[[], T]) -> T:
        try:
            return work()
        except AuditUnavailable:
            self._cached = None
            raise
        except Exception as error:  # fail closed: whatever kept the record out, refuse
            self._cached = None
            log.warning("audit: the store failed: %s", error)
            raise AuditUnavailable(
                f"the audit store is unavailable ({type(error).__name__})"
            ) from error
