"""Scoring in the stream: the ingest path's features and scores for one contract's events of
a batch, and the feature states to write once the batch has landed.

`StreamScorer.score(...)` folds the events into their entities' online features (the feature
store's states, `features.online`), scores them with the champion of the model that scores the
contract (`Contract.scored_by`), and returns the bronze scoring columns with a `commit` to call
after the rows landed. Landing never waits on a model beyond its first load in the process
(at most `FIRST_LOAD_WAIT_S`): without a champion loaded then the rows land unscored
(`no_model`), a model that fails leaves them unscored (`model_error`), and a feature store that
cannot be read leaves them unscored (`features_unavailable`, and their states are not moved). A
row folded in by an earlier delivery is `already_scored`: its bronze row, which landed with its
score, is the one that counts.

A process waits for that first load because its first batches may be redeliveries from before
a crash: a batch that landed with its scores but had not raised its alerts must be scored again
to raise them, or they are lost (its states are written all the same).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from shared.events.contracts import Contract
from shared.features.base import FeatureSet, epoch_seconds
from shared.features.online import FeatureBatch, OnlineFeatures
from shared.features.sets import BY_EVENT_TYPE
from shared.lakehouse.bronze_rows import unscored
from shared.models.alerts import TOP_FEATURES, AlertBook, AlertCandidate
from shared.models.champions import Champion, ChampionCache

log = logging.getLogger(__name__)
NO_MODEL = "no_model"
MODEL_ERROR = "model_error"
FEATURES_UNAVAILABLE = "features_unavailable"
ALREADY_SCORED = "already_scored"
FIRST_LOAD_WAIT_S = 10.0  # a process's first batches wait this long for the champion's load


@dataclass
class ScoredGroup:
    """The scoring columns of a group's rows (None for a contract no model scores), its
    features (None where folded in before), and the states to write after landing."""

    columns: list[pa.Array] | None
    features: list[dict[str, Any] | None]
    champion: Champion | None
    commit: Callable[[], None]
    scores: list[float | None]


class StreamScorer:
    """`alerts` (None: none are raised) takes the rows over their champion's threshold, once
    the rows landed and before the feature states are written (see `shared.models.alerts`)."""

    def __init__(
        self,
        features: OnlineFeatures,
        champions: ChampionCache,
        feature_sets: dict[str, FeatureSet[Any]] | None = None,
        alerts: AlertBook | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.features = features
        self.champions = champions
        self.feature_sets = BY_EVENT_TYPE if feature_sets is None else feature_sets
        self.alerts = alerts
        self._clock = clock
        # TreeSHAP of the alerting rows runs here while the batch lands (LightGBM releases the
        # GIL), and is waited for when the alerts are raised, after landing.
        self._explainer = ThreadPoolExecutor(1, thread_name_prefix="alert-contributions")

    def score(
        self,
        contract: Contract,
        envelopes: Sequence[Any],
        enqueued_times: Sequence[dt.datetime],
        sequence_numbers: Sequence[int],
        partition: int,
    ) -> ScoredGroup | None:
        """None for a contract without features; else the group's scoring."""
        feature_set = self.feature_sets.get(contract.event_type)
        if feature_set is None:
            return None
        count = len(envelopes)
        rows = [
            _row(envelope, enqueued, number, partition)
            for envelope, enqueued, number in zip(
                envelopes, enqueued_times, sequence_numbers, strict=True
            )
        ]
        try:
            batch = self.features.compute(feature_set, rows)
        except Exception as error:  # the feature store is down: land unscored, move nothing
            log.warning("%s: features unavailable, landing unscored: %s", contract.table, error)
            columns = unscored(count, FEATURES_UNAVAILABLE) if contract.scored_by else None
            return ScoredGroup(columns, [None] * count, None, _nothing, [None] * count)
        commit = _committer(self.features, batch)
        if contract.scored_by is None:
            return ScoredGroup(None, batch.features, None, commit, [None] * count)
        champion = self.champions.get(contract.scored_by, wait_s=FIRST_LOAD_WAIT_S)
        if champion is None:
            columns = unscored(count, NO_MODEL)
            return ScoredGroup(columns, batch.features, None, commit, [None] * count)
        scores = _scores(champion, batch.features)
        if scores is None:
            columns = unscored(count, MODEL_ERROR)
            return ScoredGroup(columns, batch.features, None, commit, [None] * count)
        reasons = [None if s is not None else ALREADY_SCORED for s in scores]
        scored = [s is not None for s in scores]
        columns = [
            pa.array(scores, pa.float64()),
            pa.array([champion.name if s else None for s in scored], pa.string()),
            pa.array([champion.version if s else None for s in scored], pa.int32()),
            pa.array(reasons, pa.string()),
        ]
        if self.alerts is not None:
            candidates = _candidates(
                feature_set, champion, envelopes, rows, batch, scores, self._explainer
            )
            if candidates is not None:
                commit = _alerting(self.alerts, candidates, self._clock, commit)
        return ScoredGroup(columns, batch.features, champion, commit, scores)


def _row(
    envelope: Any, enqueued: dt.datetime, sequence_number: int, partition: int
) -> dict[str, Any]:
    data = envelope.data
    row = {name: getattr(data, name) for name in data.__struct_fields__}
    moment = envelope.time if envelope.time is not None else enqueued  # as bronze's event_time
    row.update(t=epoch_seconds(moment), partition=partition, sequence_number=sequence_number)
    return row


def _scores(champion: Champion, features: list[dict[str, Any] | None]) -> list[float | None] | None:
    """The champion's score of each row with features; None when the model fails."""
    present = [i for i, found in enumerate(features) if found is not None]
    scores: list[float | None] = [None] * len(features)
    if not present:
        return scores
    names = champion.features
    try:
        matrix = np.asarray(
            [[features[i][name] for name in names] for i in present],  # type: ignore[index]
            dtype=np.float32,
        )
        for at, value in zip(present, champion.probabilities(matrix), strict=True):
            scores[at] = float(value)
    except Exception as error:  # landing never waits on a broken model
        log.warning("model %s v%d failed: %s", champion.name, champion.version, error)
        return None
    return scores


def _candidates(
    feature_set: FeatureSet[Any],
    champion: Champion,
    envelopes: Sequence[Any],
    rows: list[dict[str, Any]],
    batch: FeatureBatch,
    scores: list[float | None],
    explainer: ThreadPoolExecutor,
) -> Callable[[], list[AlertCandidate]] | None:
    """The rows over the champion's threshold, each with its top contributing features: their
    contributions are computed on `explainer` from now on, and the candidates built when
    asked for (after landing). None when no row is over."""
    over = [i for i, s in enumerate(scores) if s is not None and s >= champion.threshold]
    if not over:
        return None
    names = champion.features
    matrix = np.asarray([[batch.features[i][n] for n in names] for i in over], dtype=np.float32)  # type: ignore[index]
    contributions: Future[np.ndarray | None] = explainer.submit(champion.contributions, matrix)

    def candidates() -> list[AlertCandidate]:
        found = []
        try:
            explained = contributions.result()
        except Exception as error:  # the alerts go out without their reasons
            log.warning("model %s: no contributions for its alerts: %s", champion.name, error)
            explained = None
        for position, i in enumerate(over):
            top: list[dict[str, float | str]] = []
            if explained is not None:
                ranked = np.argsort(-explained[position], kind="stable")[:TOP_FEATURES]
                top = [
                    {
                        "feature": names[j],
                        "value": float(matrix[position, j]),
                        "contribution": round(float(explained[position, j]), 6),
                    }
                    for j in ranked
                    if explained[position, j] > 0
                ]
            moment = dt.datetime.fromtimestamp(rows[i]["t"], dt.UTC)
            found.append(
                AlertCandidate(
                    model=champion.name,
                    version=champion.version,
                    entity=str(rows[i][feature_set.entity]),
                    score=float(scores[i]),  # type: ignore[arg-type]
                    threshold=champion.threshold,
                    event_id=str(envelopes[i].id),
                    event_time=moment.isoformat().replace("+00:00", "Z"),
                    top_features=top,
                )
            )
        return found

    return candidates


def _alerting(
    alerts: AlertBook,
    candidates: Callable[[], list[AlertCandidate]],
    clock: Callable[[], dt.datetime],
    then: Callable[[], None],
) -> Callable[[], None]:
    """Raise the alerts, then write the states: a batch redelivered after a failure in between
    scores its events again and finds their alerts raised."""

    def commit() -> None:
        alerts.raise_alerts(candidates(), clock())
        then()

    return commit


def _committer(features: OnlineFeatures, batch: FeatureBatch) -> Callable[[], None]:
    return lambda: features.commit(batch)


def _nothing() -> None:
    return None
