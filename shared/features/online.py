"""Features on the ingest path: each entity's state in the feature store (a document per
entity on the document store port), folded forward batch by batch, exactly once per event.

`OnlineFeatures.compute(feature_set, rows)` reads the states of the batch's entities, gives
each row its features (the same fold as `offline.point_in_time`) and returns them with the
moved states; `commit(batch)` writes the states, each with the last hub position it folded in
per partition. The ingest path commits after the batch has landed in bronze, so that:

- a batch redelivered after its states were written is not counted twice: a row at or before
  its entity's position is skipped (its features are None; bronze already holds it, since the
  states are written only after it landed);
- a batch redelivered before they were written folds again from the states it read the first
  time, and a restart loses nothing that landed.

Each process keeps the states it committed (`CACHE_ENTRIES` at most, the least recently used
leave), so that a batch reads only the entities it has not seen before. A cached state is
used only for rows of the partition that committed it, and only while this process has seen
every event of that partition since: hub sequence numbers are consecutive per partition, so a
batch that starts past the next one after the last this process committed means another
instance consumed the partition in between (a rebalance), and that partition's states are
read again. A redelivery (a batch starting at or before it) keeps them: they hold exactly what
was committed.

Rows carry the contract's fields, `t` (`base.epoch_seconds` of the event time), `partition`
and `sequence_number`. A document's id is a hash of the feature set and the entity, so that
any entity id (slashes, `#`, long ones) makes a valid id, and the entity itself is not kept.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.documents.port import ContainerSpec, DocumentContainer, DocumentNotFound, Json
from shared.features.base import FeatureSet, Row

FEATURES_CONTAINER = ContainerSpec("features", "/id")
CACHE_ENTRIES = 50_000  # about 50 MB of payment states (under 1 KB each as JSON)


def state_id(feature_set: FeatureSet[Any], entity: str) -> str:
    """The document id of an entity's state."""
    digest = hashlib.sha256(f"{feature_set.name}\x00{entity}".encode("utf-8", "surrogatepass"))
    return f"{feature_set.name}-{digest.hexdigest()[:40]}"


@dataclass
class _Entity:
    state: msgspec.Struct
    applied: dict[str, int]
    moved: bool = False
    partition: str = ""  # the partition of the rows that moved it last


@dataclass(frozen=True)
class _Committed:
    """A state as this process committed it: its JSON, and the partition whose rows moved it."""

    state: bytes
    applied: dict[str, int]
    partition: str


@dataclass
class FeatureBatch:
    """A batch's features (None for a row folded in before) and the states it moved."""

    feature_set: FeatureSet[Any]
    features: list[dict[str, Any] | None]
    entities: dict[str, _Entity] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)  # partition -> its last sequence here

    @property
    def moved(self) -> int:
        return sum(1 for entity in self.entities.values() if entity.moved)


class OnlineFeatures:
    """The feature store on a document container (`FEATURES_CONTAINER`)."""

    def __init__(self, container: DocumentContainer, cache_entries: int = CACHE_ENTRIES) -> None:
        self.container = container
        self._cache: OrderedDict[str, _Committed] = OrderedDict()
        self._cache_entries = cache_entries
        self._committed_to: dict[str, int] = {}  # partition -> last sequence committed here
        self._lock = threading.Lock()

    def state(self, feature_set: FeatureSet[Any], entity: str) -> msgspec.Struct:
        """An entity's current state (a new one when it has none)."""
        return self._load(feature_set, entity).state

    def compute(self, feature_set: FeatureSet[Any], rows: Sequence[Row]) -> FeatureBatch:
        batch = FeatureBatch(feature_set, [])
        self._forget_gaps(rows)
        batch.entities = self._entities(feature_set, rows)
        for row in rows:
            entity = batch.entities[str(row[feature_set.entity])]
            partition, sequence = str(row["partition"]), int(row["sequence_number"])
            if sequence > batch.last.get(partition, -1):
                batch.last[partition] = sequence
            if sequence <= entity.applied.get(partition, -1):
                batch.features.append(None)  # folded in before this delivery
                continue
            batch.features.append(feature_set.features(entity.state, row))
            feature_set.apply(entity.state, row)
            entity.applied[partition] = sequence
            entity.moved = True
            entity.partition = partition
        return batch

    def commit(self, batch: FeatureBatch) -> None:
        """Write the states the batch moved, with their positions (together: one transaction
        in the embedded store)."""
        moved = [(key, entity) for key, entity in batch.entities.items() if entity.moved]
        encoded = [msgspec.json.encode(entity.state) for _, entity in moved]
        self.container.upsert_many(
            [
                {
                    "id": state_id(batch.feature_set, key),
                    "set": batch.feature_set.name,
                    "state": msgspec.json.decode(state),  # as JSON has it: lists, not tuples
                    "applied": dict(entity.applied),
                }
                for (key, entity), state in zip(moved, encoded, strict=True)
            ]
        )
        with self._lock:
            for (key, entity), state in zip(moved, encoded, strict=True):
                id = state_id(batch.feature_set, key)
                self._cache[id] = _Committed(state, dict(entity.applied), entity.partition)
                self._cache.move_to_end(id)
                entity.moved = False
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
            for partition, sequence in batch.last.items():
                if sequence > self._committed_to.get(partition, -1):
                    self._committed_to[partition] = sequence

    def _forget_gaps(self, rows: Sequence[Row]) -> None:
        """Drop the cached states of each partition another instance consumed since this one
        last committed from it (the batch starts past the next sequence number)."""
        first: dict[str, int] = {}
        for row in rows:
            partition, sequence = str(row["partition"]), int(row["sequence_number"])
            if sequence < first.get(partition, sequence + 1):
                first[partition] = sequence
        with self._lock:
            for partition, sequence in first.items():
                last = self._committed_to.get(partition)
                if last is not None and sequence > last + 1:
                    stale = [k for k, c in self._cache.items() if c.partition == partition]
                    for key in stale:
                        del self._cache[key]
                    del self._committed_to[partition]

    def _entities(self, feature_set: FeatureSet[Any], rows: Sequence[Row]) -> dict[str, _Entity]:
        """The state of each entity of the batch: this process's own where it may be used
        (the partition of the entity's first row committed it), the store's for the others
        (read together)."""
        found: dict[str, _Entity] = {}
        missing: dict[str, str] = {}  # entity -> its state's id
        with self._lock:
            for row in rows:
                key = str(row[feature_set.entity])
                if key in found or key in missing:
                    continue
                id = state_id(feature_set, key)
                committed = self._cache.get(id)
                if committed is not None and committed.partition == str(row["partition"]):
                    self._cache.move_to_end(id)
                    state = msgspec.json.decode(committed.state, type=feature_set.state_type)
                    found[key] = _Entity(
                        state, dict(committed.applied), partition=committed.partition
                    )
                else:
                    missing[key] = id
        if missing:
            documents = self.container.read_many([(id, id) for id in missing.values()])
            for key, document in zip(missing, documents, strict=True):
                found[key] = _entity(feature_set, document)
        return found

    def _load(self, feature_set: FeatureSet[Any], entity: str) -> _Entity:
        id = state_id(feature_set, entity)
        try:
            document = self.container.read(id, id)
        except DocumentNotFound:
            return _Entity(feature_set.new_state(), {})
        return _entity(feature_set, document)


def _entity(feature_set: FeatureSet[Any], document: dict[str, Json] | None) -> _Entity:
    if document is None:
        return _Entity(feature_set.new_state(), {})
    state = msgspec.convert(document["state"], feature_set.state_type)
    return _Entity(state, _positions(document.get("applied")))


def _positions(value: Json) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}
