"""The audit trail on the document store port: one hash chain per UTC hour, one transactional
batch per record, hourly checkpoints out of the chain's reach.

- Records live in the `audit` container, partitioned by hour (`/partition`), in the format of
  `embedded.audit.chain`. Each partition's head document holds its last seq and hash.
- `append` is one batch in the record's partition: the head replaced on its etag (created,
  for the hour's first record) and the record created. Whoever loses a race to another writer
  (another thread's trail, another instance) reads the head again and retries, at most
  `MAX_ATTEMPTS` times. Within a process appends take a lock, since a chain admits one writer
  at a time anyway; the head is cached between appends, so a lone writer never reads it.
- Fail closed: anything that keeps the record out of the store raises `AuditUnavailable`, and
  the caller refuses the privileged action (503).
- Closing an hour seals its head (`closed`, naming the partition that late writers, say on an
  instance whose clock lags, go on in), writes its last hash to the checkpoint store, and
  marks the head `checkpointed`. The first record of an hour closes every earlier hour still
  open; `close_hours(now)` does it for the daily timer, and picks up where a crash stopped.
- The container has no TTL: retention belongs to the governance issue.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from embedded.audit.chain import (
    HEAD,
    RECORD,
    Head,
    genesis_hash,
    next_partition,
    partition_of,
    record_time,
    seal,
)
from embedded.audit.checkpoints import Checkpoint
from shared.audit.checkpoints import CheckpointStore
from shared.audit.checkpoints import FileCheckpoints as FileCheckpoints  # the local adapter
from shared.audit.events import AuditEvent, AuditUnavailable
from shared.audit.fields import record_fields
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
_MAX_BACKOFF_S = 0.05
T = TypeVar("T")


@dataclass(frozen=True)
class _Target:
    """The partition an append goes to, its head (None: its first record) and the etag."""

    partition: str
    head: Head | None
    etag: str | None


class DocumentAuditTrail:
    """`AuditTrail` on a document container (`AUDIT_CONTAINER`); `clock` gives seconds since
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

    def append(self, event: AuditEvent) -> None:
        """Chain one record onto its hour; AuditUnavailable when the store cannot take it."""
        fields = record_fields(event)
        with self._lock:
            opened = self._guarded(lambda: self._append(fields))
        if opened is not None:
            try:
                self._close_before(opened)
            except Exception as error:  # the record is in; the daily timer closes the hours
                log.warning("audit: closing the hours before %s failed: %s", opened, error)

    def close_hours(self, now: float | None = None) -> list[Checkpoint]:
        """Close every hour before `now`'s (default: the clock's) that is not yet checkpointed;
        the checkpoints written."""
        bound = partition_of(self._clock() if now is None else now)
        return self._guarded(lambda: self._close_before(bound))

    # Appending

    def _append(self, fields: dict[str, Any]) -> str | None:
        """Append under the lock; the partition, when this record opened it."""
        partition = ""
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                self._sleep(random.uniform(0, min(_MAX_BACKOFF_S, 0.0005 * 2**attempt)))
            now = self._clock()
            target = self._target(partition_of(now))
            partition, head = target.partition, target.head
            record = seal(
                {
                    "id": str(uuid.uuid4()),
                    "type": RECORD,
                    "partition": partition,
                    "seq": 1 if head is None else head.last_seq + 1,
                    "time": record_time(now),
                    **fields,
                    "prev": genesis_hash(partition) if head is None else head.last_hash,
                }
            )
            moved = Head(partition, record["seq"], record["hash"])
            if head is None:  # the hour's first record
                step = BatchOperation("create", document=moved.document())
            else:
                step = BatchOperation("replace", document=moved.document(), if_match=target.etag)
            try:
                results = self.container.batch(
                    partition, [step, BatchOperation("create", document=record)]
                )
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
