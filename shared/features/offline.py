"""Features for training, point in time: each event sees only the events of its entity before
it in event time (ties in the order given, by event id from `bronze_rows`), through the same
fold as the online path."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from shared.features.base import FeatureSet, Row


def point_in_time(
    feature_set: FeatureSet[Any], rows: Iterable[Row]
) -> Iterator[tuple[Row, dict[str, Any]]]:
    """Each row with its features, in the order given; `rows` must come in event-time order
    (per entity at least)."""
    states: dict[str, msgspec.Struct] = {}
    for row in rows:
        entity = row[feature_set.entity]
        state = states.get(entity)
        if state is None:
            state = states[entity] = feature_set.new_state()
        yield row, feature_set.features(state, row)
        feature_set.apply(state, row)
