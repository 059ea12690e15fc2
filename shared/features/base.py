"""What a feature set is: per-entity state folded over that entity's events in order.

For each event of an entity, in event-time order, `features(state, row)` gives the event's
features from the state its earlier events left and the event itself; `apply(state, row)`
then folds the event in. The online path (the ingest function, with the state in the
feature store) and the offline path (`offline.point_in_time`, for training) call the same two
functions, so that a model is trained on the features it is served.

A row is a mapping of the contract's fields (as ingested: the values bronze holds) and `t`,
the event time in seconds since the epoch (`epoch_seconds`). Windows include the event
itself and the events before it in that order; "before" comparisons (the usual amount, the
countries seen, the last reading) see only the earlier events.

States are msgspec Structs, so that the feature store keeps them as JSON documents and reads
them back exactly (floats round-trip).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import msgspec

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
NONE = -1.0  # a feature with nothing to say (no earlier event): JSON has no NaN

Row = Mapping[str, Any]
S = TypeVar("S", bound=msgspec.Struct)


def epoch_seconds(moment: dt.datetime) -> float:
    """Seconds since the epoch, computed from whole microseconds as Arrow's timestamps are, so
    that the online and offline paths get the same float."""
    return ((moment - EPOCH) // _MICROSECOND) / 1_000_000


class FeatureSet(Protocol[S]):
    """One entity's features: `name`, the contract (`event_type`) and the field naming the
    entity (`entity`), the numeric features a model reads (`numeric`) and which of them are
    categorical, and the fold."""

    name: str
    event_type: str
    entity: str
    numeric: tuple[str, ...]
    # Of `numeric`, the labels in numeric form (indicators, lookups): monitoring compares their
    # frequencies (Jensen-Shannon), not their distributions (Kolmogorov-Smirnov).
    categorical: frozenset[str]
    state_type: type[S]

    def new_state(self) -> S: ...

    def features(self, state: S, row: Row) -> dict[str, Any]: ...

    def apply(self, state: S, row: Row) -> None: ...


def stats(values: list[float], times: list[float]) -> tuple[float, float, float]:
    """Mean, population standard deviation, and least-squares slope per hour of `values`
    against `times` (0 for one value), in one pass of plain float arithmetic."""
    n = len(values)
    if n == 0:
        return NONE, NONE, 0.0
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / n
    if n == 1:
        return mean, 0.0, 0.0
    t_mean = sum(times) / n
    spread = sum((t - t_mean) ** 2 for t in times)
    if spread == 0:
        return mean, variance**0.5, 0.0
    slope = sum((t - t_mean) * (v - mean) for t, v in zip(times, values, strict=True)) / spread
    return mean, variance**0.5, slope * 3600.0
