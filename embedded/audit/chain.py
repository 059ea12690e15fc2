"""The audit chain's format (records hash-chained per UTC hour) and how to tell a chain holds.

A record is a JSON document of the `audit` container, partitioned by its hour:

    {"id": "2026-12-07T12.000000042", "type": "record", "partition": "2026-12-07T12", "seq": 42,
     "time": "2026-12-07T12:34:56.123456Z", "action": "authz_fail", "outcome": "denied",
     "actor": {"kind": "user", "id": "<oid>", "tenant": "<tid>"},
     "resource": "POST /api/events", "reason": "...", "status": 403, "client": "10.0.0.7",
     "traceparent": "00-...", "prev": "<hash of seq 41>", "hash": "<hash of this record>"}

- `seq` counts 1, 2, 3... within the partition, and the id is the partition and the seq
  (`record_id`): ids that grow in the order records are written keep the store's index
  appends cheap, and name a record without a lookup. (Records written before carry a UUID;
  nothing reads the id's form.) `prev` is the predecessor's `hash`; for seq 1 it
  is the partition's genesis, the SHA-256 (hex) of `audit-chain-genesis:<partition>`, so that
  a chain cannot be passed off as another hour's.
- `hash` is the SHA-256 (hex) of the record's canonical JSON: every field but `hash` and the
  store's system properties (top-level keys starting with `_`: `_etag`, `_ts`, `_lsn`, `_rid`,
  `_self`, `_attachments`), keys sorted, compact separators, UTF-8, no NaN.
- Each partition has a head document (id `head`, type `head`) with its last seq and hash and
  its state: `open` (appends go on), `closed` (sealed: late appends go to the partition named
  by `next`), `checkpointed` (its last hash is in the checkpoints file as well).

`verify_partition` names the first record that breaks a partition's chain, and how.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from embedded.audit.checkpoints import Checkpoint
from embedded.audit.checkpoints import checkpoints_path as checkpoints_path  # where they live

RECORD = "record"  # the `type` of a record
FIELDS = frozenset(
    {"action", "outcome", "actor", "resource", "reason", "status", "client", "traceparent"}
)  # what a record says, beside its place in the chain
HEAD = "head"  # the `type`, and the id, of a partition's head
GENESIS_PREFIX = "audit-chain-genesis:"
PARTITION_FORMAT = "%Y-%m-%dT%H"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_MAX_SWAP_SEARCH = 64  # broken records past this are reported as edited without a swap search

HeadState = Literal["open", "closed", "checkpointed"]
ProblemKind = Literal["edited", "removed", "inserted", "reordered"]


class MalformedHead(ValueError):
    """A head document that is not one: the message says what is wrong."""


def partition_of(seconds: float) -> str:
    """The partition (UTC hour, `2026-12-07T12`) of a time in seconds since the epoch."""
    return datetime.fromtimestamp(seconds, UTC).strftime(PARTITION_FORMAT)


def record_time(seconds: float) -> str:
    """A record's `time`: UTC, ISO 8601 with microseconds and `Z`."""
    return datetime.fromtimestamp(seconds, UTC).strftime(TIME_FORMAT)


def next_partition(partition: str) -> str:
    """The hour after a partition."""
    start = datetime.strptime(partition, PARTITION_FORMAT)
    return (start + timedelta(hours=1)).strftime(PARTITION_FORMAT)


def genesis_hash(partition: str) -> str:
    """The `prev` of a partition's first record."""
    return hashlib.sha256((GENESIS_PREFIX + partition).encode("utf-8")).hexdigest()


def record_id(partition: str, seq: int) -> str:
    """The id of a partition's record number `seq`."""
    return f"{partition}.{seq:09d}"


_CANONICAL = msgspec.json.Encoder(order="sorted")


def canonical_json(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers (ValueError when the record is not plain JSON).

    msgspec writes them (sorted keys, compact, UTF-8) as the standard library's `json.dumps`
    does with those options, a test holds the two to it, except that msgspec writes a NaN or
    an infinity as null where the format refuses them: a record with a null in it takes the
    standard library's path, so that no two records share their bytes."""
    return _canonical({k: v for k, v in record.items() if k != "hash" and k[:1] != "_"})


def _canonical(body: Mapping[str, Any]) -> bytes:
    try:
        encoded = _CANONICAL.encode(body)
    except (TypeError, OverflowError, UnicodeEncodeError) as error:
        raise ValueError(f"not plain JSON: {error}") from error
    if b"null" not in encoded:
        return encoded
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash a record must carry."""
    return hashlib.sha256(canonical_json(record)).hexdigest()


def seal(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with its `hash`."""
    sealed = {k: v for k, v in record.items() if k != "hash"}
    sealed["hash"] = record_hash(sealed)
    return sealed


def new_record(
    partition: str, seq: int, time: str, fields: Mapping[str, Any], prev: str
) -> dict[str, Any]:
    """Record number `seq` of a partition, sealed: `fields` are what it says (`FIELDS`)."""
    if not fields.keys() <= FIELDS:
        raise ValueError(f"a record's fields are {', '.join(sorted(FIELDS))}")
    record = {
        "id": record_id(partition, seq),
        "type": RECORD,
        "partition": partition,
        "seq": seq,
        "time": time,
        **fields,
        "prev": prev,
    }
    # What `seal` does, without its copies: none of these keys is `hash` or a system one.
    record["hash"] = hashlib.sha256(_canonical(record)).hexdigest()
    return record


@dataclass(frozen=True)
class Head:
    """Where a partition's chain ends, as its head document says, and whether it is sealed."""

    partition: str
    last_seq: int
    last_hash: str
    state: HeadState = "open"
    next: str | None = None  # where appends go once it is sealed

    def document(self) -> dict[str, Any]:
        return {
            "id": HEAD,
            "type": HEAD,
            "partition": self.partition,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "state": self.state,
            "next": self.next,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Head:
        partition, seq = document.get("partition"), document.get("last_seq")
        last_hash, state, after = (
            document.get("last_hash"),
            document.get("state"),
            document.get("next"),
        )
        if not isinstance(partition, str):
            raise MalformedHead("a head names its partition")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise MalformedHead(f"the head of {partition}: last_seq is {seq!r}")
        if not isinstance(last_hash, str):
            raise MalformedHead(f"the head of {partition}: last_hash is {last_hash!r}")
        if state not in ("open", "closed", "checkpointed"):
            raise MalformedHead(f"the head of {partition}: state is {state!r}")
        if after is not None and not isinstance(after, str):
            raise MalformedHead(f"the head of {partition}: next is {after!r}")
        return cls(partition, seq, last_hash, state, after)


@dataclass(frozen=True)
class Problem:
    """The first place a partition's chain breaks. `id` names the record at fault; for
    `removed`, the first record after the gap (None when the chain's tail is gone)."""

    kind: ProblemKind
    partition: str
    seq: int | None
    id: str | None
    detail: str

    def __str__(self) -> str:
        seq = "-" if self.seq is None else self.seq
        return f"{self.partition} seq {seq} {self.kind}: record {self.id or '-'}: {self.detail}"


def verify_partition(
    records: Iterable[Mapping[str, Any]],
    *,
    partition: str | None = None,
    head: Head | None = None,
    checkpoint: Checkpoint | None = None,
) -> Problem | None:
    """The first problem of one partition's chain, or None when it holds.

    `records` are the partition's records in any order. `checkpoint`, when the partition was
    closed, is where its chain must end. `head` is its head document read before the records:
    an open head may be behind the records (appends went on), never ahead of them; a sealed
    head is where the chain ends.

    - `edited`: a record's hash does not match its content; or a record was changed and its
      hash recomputed, so its successor (or the checkpoint) no longer chains to it.
    - `removed`: a seq is missing, or the chain ends before the seq the head or checkpoint
      holds (a truncated tail).
    - `inserted`: a second record with a seq, or a record after the end of a closed chain.
    - `reordered`: records whose places were swapped: a record sealed under another seq, or
      chained after a record other than its predecessor.

    Where several records break, the one earliest in the chain is named. What a hash chain
    cannot show: a chain rewritten wholesale from some record on, hashes and head included,
    before its hour was checkpointed."""
    docs = [r for r in records if not (r.get("id") == HEAD and r.get("type") == HEAD)]
    name = partition or _partition_name(docs, head, checkpoint)
    if name is None:
        return None
    return _Chain(name, docs, head, checkpoint).first_problem()


def _partition_name(
    docs: list[Mapping[str, Any]], head: Head | None, checkpoint: Checkpoint | None
) -> str | None:
    for doc in docs:
        if isinstance(doc.get("partition"), str):
            return str(doc["partition"])
    if head is not None:
        return head.partition
    return checkpoint.partition if checkpoint is not None else None


def _seq(doc: Mapping[str, Any]) -> int | None:
    seq = doc.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1 else None


def _well_formed(doc: Mapping[str, Any]) -> bool:
    return (
        _seq(doc) is not None
        and isinstance(doc.get("prev"), str)
        and isinstance(doc.get("hash"), str)
    )


def _hash_matches(doc: Mapping[str, Any], expected: Any) -> bool:
    try:
        return isinstance(expected, str) and record_hash(doc) == expected
    except (TypeError, ValueError):  # not plain JSON (NaN, a lone surrogate): not what was sealed
        return False


def intact(doc: Mapping[str, Any]) -> bool:
    """Whether a record's hash matches its content."""
    return _hash_matches(doc, doc.get("hash"))


@dataclass(frozen=True)
class _End:
    """Where the chain must end (a checkpoint), or at least reach (an open head)."""

    label: str
    last_seq: int
    last_hash: str
    final: bool  # nothing may follow: a checkpoint, or a sealed head


class _Chain:
    """One partition's records, indexed for the checks; `first_problem` runs them."""

    def __init__(
        self,
        partition: str,
        docs: list[Mapping[str, Any]],
        head: Head | None,
        checkpoint: Checkpoint | None,
    ) -> None:
        self.partition = partition
        self.genesis = genesis_hash(partition)
        self.docs = docs
        self.ends: list[_End] = []
        if checkpoint is not None:
            self.ends.append(_End("checkpoint", checkpoint.last_seq, checkpoint.last_hash, True))
        if head is not None:
            self.ends.append(_End("head", head.last_seq, head.last_hash, head.state != "open"))
        self.intact = {id(d) for d in docs if intact(d)}  # each hash computed once
        self.sound = [d for d in docs if id(d) in self.intact and _well_formed(d)]
        self.broken = [d for d in docs if id(d) not in self.intact]
        self.by_seq: dict[int, list[Mapping[str, Any]]] = {}
        self.by_hash: dict[str, Mapping[str, Any]] = {}
        for doc in sorted(self.sound, key=lambda d: (str(d.get("time", "")), str(d.get("id")))):
            self.by_seq.setdefault(int(doc["seq"]), []).append(doc)
            self.by_hash.setdefault(str(doc["hash"]), doc)

    def first_problem(self) -> Problem | None:
        found = self._content_problems()
        link = self._link_problem()
        if link is not None:
            found.append((link[0], 1, link[1]))
        if not found:
            return None
        return min(found, key=lambda item: (item[0], item[1], item[2].seq or 0))[2]

    def _problem(self, kind: ProblemKind, doc: Mapping[str, Any] | None, detail: str) -> Problem:
        seq = None if doc is None else doc.get("seq")
        record_id = None if doc is None else doc.get("id")
        return Problem(
            kind,
            self.partition,
            seq if isinstance(seq, int) else None,
            record_id if isinstance(record_id, str) else None,
            detail,
        )

    # Records that do not match their own hash (or are not records at all)

    def _content_problems(self) -> list[tuple[int, int, Problem]]:
        found: list[tuple[int, int, Problem]] = []
        for doc in self.docs:
            if id(doc) in self.intact and not _well_formed(doc):  # sealed, yet never written
                problem = self._problem(
                    "inserted",
                    doc,
                    "sealed, but without a seq from 1 and a prev: no link of a chain",
                )
                found.append((0, 0, problem))
        search = len(self.broken) <= _MAX_SWAP_SEARCH
        for doc in self.broken:
            seq = _seq(doc) or 0
            place = seq
            before = self.by_hash.get(str(doc.get("prev")))
            if before is not None:  # where its prev puts it, should its seq have been changed
                place = min(place or 2**62, int(before["seq"]) + 1)
            elif doc.get("prev") == self.genesis:
                place = 1
            sealed_as = self._sealed_as(doc) if search else None
            if sealed_as is not None:
                detail = f"it was sealed as seq {sealed_as}: its place in the chain was changed"
                found.append((min(seq, sealed_as), 0, self._problem("reordered", doc, detail)))
            else:
                detail = "its hash does not match its content"
                found.append((place, 0, self._problem("edited", doc, detail)))
        return found

    def _sealed_as(self, doc: Mapping[str, Any]) -> int | None:
        """The seq a broken record was sealed with, when taking another broken record's seq
        (and time) makes its hash match again: the two swapped places."""
        for other in self.broken:
            if other is doc or _seq(other) is None or other.get("seq") == doc.get("seq"):
                continue
            for fields in (("seq",), ("seq", "time")):
                moved = {**doc, **{f: other.get(f) for f in fields}}
                if _hash_matches(moved, doc.get("hash")):
                    return _seq(other)
        return None

    # The links between sound records, and the chain's end

    def _link_problem(self) -> tuple[int, Problem] | None:
        seq, prev = 1, self.genesis
        last: Mapping[str, Any] | None = None
        top = max(self.by_seq, default=0)
        while seq <= top:
            here = self.by_seq.get(seq)
            if here is None:
                return self._gap(seq, prev)
            if len(here) > 1:
                return seq, self._duplicate(seq, prev, here)
            record = here[0]
            if record["prev"] != prev:
                return self._broken_link(seq, record, last)
            prev, last = str(record["hash"]), record
            seq += 1
        return self._end_problem(seq - 1)

    def _ends_at(self, seq: int, hash_: str) -> _End | None:
        return next((e for e in self.ends if e.last_seq == seq and e.last_hash == hash_), None)

    def _continued(self, doc: Mapping[str, Any]) -> bool:
        """Whether the chain goes on from this record: its successor, or an end, holds its hash."""
        following = self.by_seq.get(int(doc["seq"]) + 1, [])
        if any(after["prev"] == doc["hash"] for after in following):
            return True
        return self._ends_at(int(doc["seq"]), str(doc["hash"])) is not None

    def _gap(self, seq: int, prev: str) -> tuple[int, Problem]:
        after = self.by_seq[min(s for s in self.by_seq if s > seq)][0]
        end = self._ends_at(seq - 1, prev)
        if end is not None:
            detail = f"the {end.label} ends the chain at seq {seq - 1}; this record is beyond it"
            return int(after["seq"]), self._problem("inserted", after, detail)
        detail = f"seq {seq} is missing: removed before this record (seq {after['seq']})"
        return seq, Problem("removed", self.partition, seq, str(after["id"]), detail)

    def _duplicate(self, seq: int, prev: str, here: list[Mapping[str, Any]]) -> Problem:
        linked = [d for d in here if d["prev"] == prev]
        genuine = next((d for d in linked if self._continued(d)), None)
        genuine = genuine or next(iter(linked), None)
        genuine = genuine or next((d for d in here if self._continued(d)), None)
        extra = next(d for d in here if d is not genuine)
        detail = f"a second record with seq {seq}"
        if genuine is not None:
            detail += f" (the chain goes on from {genuine.get('id')})"
        return self._problem("inserted", extra, detail)

    def _broken_link(
        self, seq: int, record: Mapping[str, Any], last: Mapping[str, Any] | None
    ) -> tuple[int, Problem]:
        target = self.by_hash.get(str(record["prev"]))
        if target is not None and target is not record:
            detail = f"it is chained after seq {target['seq']}, not seq {seq - 1}: records swapped"
            return seq, self._problem("reordered", record, detail)
        if self._swapped_with_next(seq, record):
            detail = f"it and seq {seq + 1} swapped places (both re-hashed)"
            return seq, self._problem("reordered", record, detail)
        end = self._ends_at(seq - 1, str(last["hash"])) if last is not None else None
        if end is not None:
            detail = f"the {end.label} ends the chain at seq {seq - 1}; this record is beyond it"
            return seq, self._problem("inserted", record, detail)
        if last is None:
            detail = "it does not start from the partition's genesis hash"
            return seq, self._problem("edited", record, detail)
        if self._continued(record):  # the chain goes on from it: its predecessor was changed
            detail = f"seq {seq} is chained to another hash: this record was changed and re-hashed"
            return seq - 1, self._problem("edited", last, detail)
        detail = f"it is not chained to seq {seq - 1}: it was changed and re-hashed"
        return seq, self._problem("edited", record, detail)

    def _swapped_with_next(self, seq: int, record: Mapping[str, Any]) -> bool:
        """Whether the record's prev is the hash its successor would have in the record's place
        (its seq, and its own time or the record's): the two swapped and were re-hashed."""
        for other in self.by_seq.get(seq + 1, []):
            for fields in ({"seq": seq}, {"seq": seq, "time": record.get("time")}):
                if _hash_matches({**other, **fields}, record["prev"]):
                    return True
        return False

    def _end_problem(self, last_seq: int) -> tuple[int, Problem] | None:
        for end in self.ends:
            if end.last_seq > last_seq:
                gone = end.last_seq - last_seq
                detail = (
                    f"the {end.label} says the chain ends at seq {end.last_seq}, the records "
                    f"end at seq {last_seq}: the last {gone} removed"
                )
                return last_seq + 1, Problem("removed", self.partition, last_seq + 1, None, detail)
        for end in self.ends:
            if end.final and end.last_seq < last_seq:
                extra = self.by_seq[end.last_seq + 1][0]
                detail = f"the {end.label} closed the chain at seq {end.last_seq}"
                return end.last_seq + 1, self._problem("inserted", extra, detail)
            at = self.by_seq.get(end.last_seq)
            if at is not None and at[0]["hash"] != end.last_hash:
                detail = (
                    f"its hash is not the one the {end.label} holds: it, or a record before "
                    "it, was changed and the chain re-hashed"
                )
                return end.last_seq, self._problem("edited", at[0], detail)
        return None
