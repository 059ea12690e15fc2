"""What monitoring knows of a model: its features in order and which of them are categorical,
the bounds its event contract declares for them, its decision threshold, and the PR-AUC it was
promoted with.

Which features are categorical is declared by each feature set (`FeatureSet.categorical`),
rather than guessed from the data. The indicators (`first_time_country`, `ecommerce`, `atm`) and
`merchant_category_risk` (a lookup of the merchant's category, a handful of values) are labels
in numeric form: their drift is a change of frequencies, which Jensen-Shannon measures, while a
Kolmogorov-Smirnov test on them measures nothing meaningful. The counts (`count_10m`,
`small_count_5m`) also take few values, but they are quantities whose shifts mean something, so
they are numeric. Guessing from cardinality would turn a count into a category in a quiet
window and back in a busy one, and change which statistics a report holds from one run to the
next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.events.contracts import ContractRegistry
from shared.features.base import FeatureSet
from shared.monitoring.quality import Bounds, contract_bounds


class UnknownFeature(ValueError):
    """A declaration names a feature its feature set does not have."""


@dataclass(frozen=True)
class MonitoredModel:
    """A model as monitoring sees it; `version` is the registry's, when known."""

    name: str
    features: tuple[str, ...]
    threshold: float
    categorical: frozenset[str] = frozenset()
    bounds: Mapping[str, Bounds] = field(default_factory=dict)
    expected_pr_auc: float | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        unknown = (self.categorical | set(self.bounds)) - set(self.features)
        if unknown:
            raise UnknownFeature(f"model {self.name}: no features {sorted(unknown)}")


def monitored_model(
    name: str,
    feature_set: FeatureSet[Any],
    threshold: float,
    *,
    expected_pr_auc: float | None = None,
    version: int | None = None,
    contracts: ContractRegistry | None = None,
) -> MonitoredModel:
    """A model of `feature_set`'s numeric features, with the declared categorical ones and the
    bounds of its contract's fields that are features too."""
    contract = (contracts or ContractRegistry()).get(feature_set.event_type)
    declared = contract_bounds(contract) if contract is not None else {}
    return MonitoredModel(
        name=name,
        features=feature_set.numeric,
        threshold=threshold,
        categorical=feature_set.categorical,
        bounds={n: b for n, b in declared.items() if n in feature_set.numeric},
        expected_pr_auc=expected_pr_auc,
        version=version,
    )
