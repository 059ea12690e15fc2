"""Which version serves whom: the champion, and during a canary rollout a challenger that takes
a share of the traffic, split by entity key.

The registry holds the rollout, so every serving process follows it: the `champion` and
`challenger` aliases, and the model's `canary_percent` tag (0 to 100). A process reads all three
in one read of the registered model, so it never sees half a change. The challenger serves only
while its alias exists and the share is above 0: a rollback deletes the alias, one write, and
the next look of every process finds the champion alone, as before the rollout.

An entity's bucket (0 to 99) is a hash of the model and the entity key, so an entity sees one
version for the whole of a step, the same one on every process, and stays with the challenger
as its share grows (10 %, then 25 %: the first tenth of the buckets is in both).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.models.registry_port import RegisteredModel

CHAMPION = "champion"
CHALLENGER = "challenger"
CANARY_PERCENT = "canary_percent"  # a model tag: the challenger's share of the traffic
STAGE = "lifecycle_stage"  # a model tag: where the model's lifecycle is (see orchestrations)
INSTANCE = "lifecycle_instance"  # a model tag: the orchestration driving it
BUCKETS = 100
_PERCENT = re.compile(r"[0-9]{1,3}")  # ASCII digits only

T = TypeVar("T")


def bucket(model: str, entity: str) -> int:
    """The entity's bucket for the model, 0 to 99, the same on every process."""
    digest = hashlib.blake2b(f"{model}\x00{entity}".encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % BUCKETS


@dataclass(frozen=True)
class Traffic:
    """The versions a model serves with: the champion's (None before it has one), the
    challenger's and its share in percent (None and 0 outside a rollout)."""

    champion: int | None
    challenger: int | None = None
    percent: int = 0

    @classmethod
    def of(cls, model: RegisteredModel) -> Traffic:
        champion = model.aliases.get(CHAMPION)
        challenger = model.aliases.get(CHALLENGER)
        percent = canary_percent(model.tags.get(CANARY_PERCENT, "0"))
        if challenger is None or percent == 0 or challenger == champion:
            return cls(champion)
        return cls(champion, challenger, percent)

    def describe(self) -> dict[str, int]:
        """The split as `GET /api/models/{name}` shows it: version -> percent of traffic."""
        split: dict[str, int] = {}
        if self.champion is not None:
            split[str(self.champion)] = BUCKETS - self.percent
        if self.challenger is not None:
            split[str(self.challenger)] = self.percent
        return split


def canary_percent(text: str) -> int:
    """A `canary_percent` tag's value: a whole number from 0 to 100 (anything else is 0, so a
    damaged tag sends nobody to the challenger)."""
    stripped = text.strip()
    if not _PERCENT.fullmatch(stripped):
        return 0
    value = int(stripped)
    return value if value <= BUCKETS else 0


@dataclass(frozen=True)
class Deployment(Generic[T]):
    """The loaded versions of a model (T: a loaded model) and the challenger's share."""

    name: str
    champion: T
    challenger: T | None = None
    percent: int = 0

    def pick(self, entity: str) -> T:
        """The version that serves `entity`."""
        if self.challenger is not None and bucket(self.name, entity) < self.percent:
            return self.challenger
        return self.champion
