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

Rows carry the contract's fields, `t` (`base.epoch_seconds` of the event time), `partition`
and `sequence_number`. A document's id is a hash of the feature set and the entity, so that
any entity id (slashes, `#`, long ones) makes a valid id, and the entity itself is not kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.documents.port import ContainerSpec, DocumentContainer, DocumentNotFound, Json
from shared.features.base import FeatureSet, Row

FEATURES_CONTAINER = ContainerSpec("features", "/id")


def state_id(feature_set: FeatureSet[Any], entity: str) -> str:
    """The document id of an entity's state."""
    digest = hashlib.sha256(f"{feature_set.name}\x00{entity}".encode("utf-8", "surrogatepass"))
    return f"{feature_set.name}-{digest.hexdigest()[:40]}"


@dataclass
class _Entity:
    state: msgspec.Struct
    applied: dict[str, int]
    moved: bool = False


@dataclass
class FeatureBatch:
    """A batch's features (None for a row folded in before) and the states it moved."""

    feature_set: FeatureSet[Any]
    features: list[dict[str, Any] | None]
    entities: dict[str, _Entity] = field(default_factory=dict)

    @property
    def moved(self) -> int:
        return sum(1 for entity in self.entities.values() if entity.moved)


class OnlineFeatures:
    """The feature store on a document container (`FEATURES_CONTAINER`)."""

    def __init__(self, container: DocumentContainer) -> None:
        self.container = container

    def state(self, feature_set: FeatureSet[Any], entity: str) -> msgspec.Struct:
        """An entity's current state (a new one when it has none)."""
        return self._load(feature_set, entity).state

    def compute(self, feature_set: FeatureSet[Any], rows: Sequence[Row]) -> FeatureBatch:
        batch = FeatureBatch(feature_set, [])
        for row in rows:
            key = str(row[feature_set.entity])
            entity = batch.entities.get(key)
            if entity is None:
                entity = batch.entities[key] = self._load(feature_set, key)
            partition, sequence = str(row["partition"]), int(row["sequence_number"])
            if sequence <= entity.applied.get(partition, -1):
                batch.features.append(None)  # folded in before this delivery
                continue
            batch.features.append(feature_set.features(entity.state, row))
            feature_set.apply(entity.state, row)
            entity.applied[partition] = sequence
            entity.moved = True
        return batch

    def commit(self, batch: FeatureBatch) -> None:
        """Write the states the batch moved, with their positions (together: one transaction
        in the embedded store)."""
        moved = [(key, entity) for key, entity in batch.entities.items() if entity.moved]
        self.container.upsert_many(
            [
                {
                    "id": state_id(batch.feature_set, key),
                    "set": batch.feature_set.name,
                    "state": msgspec.to_builtins(entity.state),
                    "applied": dict(entity.applied),
                }
                for key, entity in moved
            ]
        )
        for _, entity in moved:
            entity.moved = False

    def _load(self, feature_set: FeatureSet[Any], entity: str) -> _Entity:
        id = state_id(feature_set, entity)
        try:
            document = self.container.read(id, id)
        except DocumentNotFound:
            return _Entity(feature_set.new_state(), {})
        state = msgspec.convert(document["state"], feature_set.state_type)
        applied = _positions(document.get("applied"))
        return _Entity(state, applied)


def _positions(value: Json) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}
