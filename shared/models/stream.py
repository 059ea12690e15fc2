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
import time
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
from shared.models.serving_stats import ServingStats

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
    """Each row is scored by the version that serves its entity (the champion, or during a
    canary the challenger for its share of entities: `shared.models.deployment`), which bronze
    records beside the score. `alerts` (None: none are raised) takes the rows over their
    version's threshold, once the rows landed and before the feature states are written (see
    `shared.models.alerts`). `stats` (None: not kept) gets each version's figures, for the
    canary's checks."""

    def __init__(
        self,
        features: OnlineFeatures,
        champions: ChampionCache,
        feature_sets: dict[str, FeatureSet[Any]] | None = None,
        alerts: AlertBook | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        stats: ServingStats | None = None,
    ) -> None:
        self.features = features
        self.champions = champions
        self.feature_sets = BY_EVENT_TYPE if feature_sets is None else feature_sets
        self.alerts = alerts
        self.stats = stats
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
        deployment = self.champions.deployment(contract.scored_by, wait_s=FIRST_LOAD_WAIT_S)
        if deployment is None:
            columns = unscored(count, NO_MODEL)
            return ScoredGroup(columns, batch.features, None, commit, [None] * count)
        assigned = [deployment.pick(str(row[feature_set.entity])) for row in rows]
        scores, failed = _scores(assigned, batch.features, self.stats)
        reasons = [
            MODEL_ERROR if bad else ALREADY_SCORED if s is None else None
            for s, bad in zip(scores, failed, strict=True)
        ]
        named = [s is not None or bad for s, bad in zip(scores, failed, strict=True)]
        columns = [
            pa.array(scores, pa.float64()),
            pa.array([m.name if n else None for m, n in zip(assigned, named, strict=True)]),
            pa.array(
                [m.version if n else None for m, n in zip(assigned, named, strict=True)], pa.int32()
            ),
            pa.array(reasons, pa.string()),
        ]
        if self.alerts is not None:
            candidates = _candidates(
                feature_set, assigned, envelopes, rows, batch, scores, self._explainer
            )
            if candidates is not None:
                commit = _alerting(self.alerts, candidates, self._clock, commit)
        return ScoredGroup(columns, batch.features, deployment.champion, commit, scores)


def _row(
    envelope: Any, enqueued: dt.datetime, sequence_number: int, partition: int
) -> dict[str, Any]:
    data = envelope.data
    row = {name: getattr(data, name) for name in data.__struct_fields__}
    moment = envelope.time if envelope.time is not None else enqueued  # as bronze's event_time
    row.update(t=epoch_seconds(moment), partition=partition, sequence_number=sequence_number)
    return row


def _scores(
    assigned: list[Champion], features: list[dict[str, Any] | None], stats: ServingStats | None
) -> tuple[list[float | None], list[bool]]:
    """Each row's score by the version that serves its entity (None for a row without features,
    folded in before), and which rows a failing model left unscored."""
    scores: list[float | None] = [None] * len(features)
    failed = [False] * len(features)
    by_model: dict[int, list[int]] = {}
    for i, found in enumerate(features):
        if found is not None:
            by_model.setdefault(id(assigned[i]), []).append(i)
    for present in by_model.values():
        model = assigned[present[0]]
        names = model.features
        try:
            matrix = np.asarray(
                [[features[i][name] for name in names] for i in present],  # type: ignore[index]
                dtype=np.float32,
            )
            values = model.probabilities(matrix)
            probe = _probe(model, matrix, stats)
        except Exception as error:  # landing never waits on a broken model
            log.warning("model %s v%d failed: %s", model.name, model.version, error)
            for i in present:
                failed[i] = True
            if stats is not None:
                stats.record(model.name, model.version, rows=0, errors=len(present))
            continue
        for at, value in zip(present, values, strict=True):
            scores[at] = float(value)
        if stats is not None:
            stats.record(model.name, model.version, rows=len(present), probe_s=probe, scores=values)
    return scores, failed


def _probe(model: Champion, matrix: np.ndarray, stats: ServingStats | None) -> float | None:
    """The time one record takes, when the figures want one now (see `serving_stats`)."""
    if stats is None or not stats.probe_due(model.name, model.version):
        return None
    started = time.perf_counter()
    model.probabilities(matrix[:1])
    return time.perf_counter() - started


def _candidates(
    feature_set: FeatureSet[Any],
    assigned: list[Champion],
    envelopes: Sequence[Any],
    rows: list[dict[str, Any]],
    batch: FeatureBatch,
    scores: list[float | None],
    explainer: ThreadPoolExecutor,
) -> Callable[[], list[AlertCandidate]] | None:
    """The rows over the threshold of the version that scored them, each with its top
    contributing features: their contributions are computed on `explainer` from now on, and the
    candidates built when asked for (after landing). None when no row is over."""
    over: dict[int, list[int]] = {}
    for i, s in enumerate(scores):
        if s is not None and s >= assigned[i].threshold:
            over.setdefault(id(assigned[i]), []).append(i)
    if not over:
        return None
    groups = []
    for indices in over.values():
        model = assigned[indices[0]]
        matrix = np.asarray(
            [[batch.features[i][n] for n in model.features] for i in indices],  # type: ignore[index]
            dtype=np.float32,
        )
        contributions: Future[np.ndarray | None] = explainer.submit(model.contributions, matrix)
        groups.append((model, indices, matrix, contributions))

    def candidates() -> list[AlertCandidate]:
        found = []
        for model, indices, matrix, contributions in groups:
            try:
                explained = contributions.result()
            except Exception as error:  # the alerts go out without their reasons
                log.warning("model %s: no contributions for its alerts: %s", model.name, error)
                explained = None
            for position, i in enumerate(indices):
                top = (
                    [] if explained is None else _top(model, matrix[position], explained[position])
                )
                moment = dt.datetime.fromtimestamp(rows[i]["t"], dt.UTC)
                found.append(
                    AlertCandidate(
                        model=model.name,
                        version=model.version,
                        entity=str(rows[i][feature_set.entity]),
                        score=float(scores[i]),  # type: ignore[arg-type]
                        threshold=model.threshold,
                        event_id=str(envelopes[i].id),
                        event_time=moment.isoformat().replace("+00:00", "Z"),
                        top_features=top,
                    )
                )
        return found

    return candidates


def _top(
    model: Champion, values: np.ndarray, explained: np.ndarray
) -> list[dict[str, float | str]]:
    ranked = np.argsort(-explained, kind="stable")[:TOP_FEATURES]
    return [
        {
            "feature": model.features[j],
            "value": float(values[j]),
            "contribution": round(float(explained[j]), 6),
        }
        for j in ranked
        if explained[j] > 0
    ]


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
