"""Walk every partition of an audit container and check its chain (`chain.verify_partition`).

The partitions are those with a head, a first record, or a checkpoint, so a closed hour whose
records were all deleted is still named. Each partition's head is read before its records (an
open chain may only have grown since), and its records are streamed in seq order: a partition
that holds costs one pass and little memory; one that does not is read again whole, so that
the first bad record can be named. The container is anything with the document store's
`read` and `query` (the embedded store, or the platform's Cosmos DB adapter).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from embedded.audit.chain import (
    HEAD,
    RECORD,
    Head,
    MalformedHead,
    Problem,
    genesis_hash,
    intact,
    verify_partition,
)
from embedded.audit.checkpoints import Checkpoint
from embedded.documents.model import Condition, DocumentNotFound, Page, Query

PAGE = 1000


class AuditContainer(Protocol):
    """What verifying needs of a container: point reads and queries."""

    def read(self, id: str, partition_key: Any) -> dict[str, Any]: ...

    def query(self, query: Query, continuation: str | None = None) -> Page: ...


@dataclass(frozen=True)
class PartitionResult:
    """One partition checked: how many records, where its chain ends, whether it is closed and
    checkpointed, and its first problem (None: the chain holds)."""

    partition: str
    records: int
    last_seq: int
    state: str  # the head's: open, closed, checkpointed; or "no head"
    checkpointed: bool
    problem: Problem | None


def verify_trail(
    container: AuditContainer, checkpoints: Mapping[str, Checkpoint]
) -> list[PartitionResult]:
    """Every partition's chain checked, oldest hour first."""
    heads = {_partition(doc): doc for doc in _all(container, _heads())}
    firsts = {_partition(doc) for doc in _all(container, _first_records())}
    names = sorted((set(heads) | firsts | set(checkpoints)) - {""})
    return [verify_one(container, name, checkpoints.get(name)) for name in names]


def verify_one(
    container: AuditContainer, partition: str, checkpoint: Checkpoint | None
) -> PartitionResult:
    """One partition's chain, against its head and checkpoint."""
    try:
        head_doc: dict[str, Any] | None = container.read(HEAD, partition)
    except DocumentNotFound:
        head_doc = None
    try:
        head = Head.from_document(head_doc) if head_doc is not None else None
    except MalformedHead as error:
        broken = Problem("edited", partition, None, HEAD, f"the head is not one: {error}")
        return PartitionResult(partition, 0, 0, "?", checkpoint is not None, broken)
    state = head.state if head is not None else "no head"
    count, last_seq, holds = _stream(container, partition, head, checkpoint)
    problem: Problem | None = None
    if not holds:
        records = list(_all(container, _records(partition)))
        problem = verify_partition(records, partition=partition, head=head, checkpoint=checkpoint)
        count = len(records)
        last_seq = max((r["seq"] for r in records if isinstance(r.get("seq"), int)), default=0)
    return PartitionResult(partition, count, last_seq, state, checkpoint is not None, problem)


def _stream(
    container: AuditContainer,
    partition: str,
    head: Head | None,
    checkpoint: Checkpoint | None,
) -> tuple[int, int, bool]:
    """One pass in seq order: (records, last seq, whether the chain plainly holds). False sends
    the partition to the full analysis, which names what is wrong."""
    seq, prev = 0, genesis_hash(partition)
    ends = [(end.last_seq, end.last_hash) for end in (head, checkpoint) if end is not None]
    for record in _all(container, _records(partition)):
        number = record.get("seq")
        if type(number) is not int or number != seq + 1 or record.get("prev") != prev:
            return seq, seq, False
        if not intact(record):
            return seq, seq, False
        seq, prev = seq + 1, str(record["hash"])
        if any(at == seq and last != prev for at, last in ends):
            return seq, seq, False
    if any(at > seq for at, _ in ends):  # an end past the last record: a tail removed
        return seq, seq, False
    sealed_at = [end.last_seq for end in (checkpoint,) if end is not None]
    if head is not None and head.state != "open":
        sealed_at.append(head.last_seq)
    return seq, seq, all(at == seq for at in sealed_at)


def _heads() -> Query:
    return Query(where=[Condition("/type", "=", HEAD)], cross_partition=True, page_size=PAGE)


def _first_records() -> Query:
    where = [Condition("/type", "=", RECORD), Condition("/seq", "=", 1)]
    return Query(where=where, cross_partition=True, page_size=PAGE)


def _records(partition: str) -> Query:
    return Query(
        where=[Condition("/type", "=", RECORD)],
        order_by=[("/seq", False)],
        partition_key=partition,
        page_size=PAGE,
    )


def _all(container: AuditContainer, query: Query) -> Iterator[dict[str, Any]]:
    continuation: str | None = None
    while True:
        page = container.query(query, continuation)
        yield from page.documents
        if page.continuation is None:
            return
        continuation = page.continuation


def _partition(document: Mapping[str, Any]) -> str:
    value = document.get("partition")
    return value if isinstance(value, str) else ""
