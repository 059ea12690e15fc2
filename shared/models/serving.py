"""Models over HTTP: a score for posted records with the entity's online features, and
recommendations from a user's recent items.

- `score(model, body)`: one record or a JSON array of up to `MAX_RECORDS`, each either a
  CloudEvent of the model's contract (as posted to `/api/events`; its `time` is the event's)
  or the bare data object (scored as of now). Each is checked as the intake checks it (the
  contract's types, Luhn), folded with its entity's current online state without changing it,
  and scored by the champion: `{"score", "decision", "threshold", "reasons", "model",
  "version"}`. `BadScoreRequest` (400) names the record and field at fault; `NoChampion` (503)
  when the model has no champion loaded yet.
- `recommend(user_id, k)`: the champion's item scores for the user's recent items (weighted
  by recency), leaving out the items the user bought and those in the history; popularity for
  a user without history. Nothing about the request is stored.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import msgspec
import numpy as np

from shared.events.contracts import CONTRACTS, Contract
from shared.features.base import epoch_seconds
from shared.features.interactions import InteractionFeatures, UserState
from shared.features.online import OnlineFeatures
from shared.features.sets import BY_EVENT_TYPE
from shared.models.alerts import TOP_FEATURES
from shared.models.champions import Champion, ChampionCache
from shared.models.deployment import Deployment
from shared.models.onnx_export import scores
from shared.models.recommendations import history_weights
from shared.models.serving_stats import ServingStats

MAX_RECORDS = 100
FIRST_LOAD_WAIT_S = 10.0  # a request finding no champion loaded waits this long for one
MAX_BODY_BYTES = 256 * 1024
MAX_K = 100
SCORED = {contract.scored_by: contract for contract in CONTRACTS if contract.scored_by}
RECOMMENDATIONS = "recommendations"
_ENVELOPE_KEYS = frozenset({"specversion", "data"})


class BadScoreRequest(ValueError):
    """A request that cannot be scored; the message names the record and field (400)."""


class NoChampion(LookupError):
    """The model has no champion loaded (yet): 503, with what to do."""


class Serving:
    def __init__(
        self,
        features: OnlineFeatures,
        champions: ChampionCache,
        stats: ServingStats | None = None,
    ) -> None:
        self.features = features
        self.champions = champions
        self.stats = stats
        self._decoders = {
            contract.event_type: msgspec.json.Decoder(contract.data) for contract in CONTRACTS
        }

    def score(self, model: str, body: bytes, now: dt.datetime) -> list[dict[str, Any]]:
        contract = SCORED[model]
        records = _records(body)
        decoded = [self._decode(contract, record, at, now) for at, record in enumerate(records)]
        problems = contract.violations([data for data, _ in decoded])
        if problems:
            at = min(problems)
            raise BadScoreRequest(f"record {at}: {problems[at]}")
        deployment = self._deployment(model)
        feature_set = BY_EVENT_TYPE[contract.event_type]
        rows = []
        for data, moment in decoded:
            row = {name: getattr(data, name) for name in data.__struct_fields__}
            row["t"] = epoch_seconds(moment)
            rows.append(row)
        assigned = [deployment.pick(str(row[feature_set.entity])) for row in rows]
        answers: list[dict[str, Any]] = [{} for _ in rows]
        for version in {id(m): m for m in assigned}.values():
            indices = [i for i, m in enumerate(assigned) if m is version]
            matrix = []
            for i in indices:
                state = self.features.state(feature_set, str(rows[i][feature_set.entity]))
                found = feature_set.features(state, rows[i])
                matrix.append([found[name] for name in version.features])
            features = np.asarray(matrix, dtype=np.float32)
            started = time.perf_counter()
            probabilities = version.probabilities(features[:1])
            probe = time.perf_counter() - started
            if len(indices) > 1:
                probabilities = version.probabilities(features)
            if self.stats is not None:
                self.stats.record(
                    version.name,
                    version.version,
                    rows=len(indices),
                    probe_s=probe,
                    scores=probabilities,
                )
            contributions = version.contributions(features)
            for j, i in enumerate(indices):
                explained = None if contributions is None else contributions[j]
                answers[i] = _answer(version, float(probabilities[j]), features[j], explained)
        return answers

    def recommend(self, user_id: str, k: int) -> dict[str, Any]:
        champion = self._champion(RECOMMENDATIONS)
        items = [str(item) for item in champion.card.get("items", [])]
        index = {item: position for position, item in enumerate(items)}
        state = self.features.state(InteractionFeatures(), user_id)
        assert isinstance(state, UserState)
        recent = [item for item in state.items if item in index]
        excluded = set(state.purchased) | set(state.items)
        if recent:
            history = np.zeros((1, len(items)), dtype=np.float32)
            for item, weight in zip(recent, history_weights(len(recent)), strict=False):
                history[0, index[item]] = weight
            score = scores(champion.model, history)[0]
            ranked = [items[i] for i in np.argsort(-score, kind="stable") if score[i] > 0]
            chosen = [item for item in ranked if item not in excluded][:k]
            source = "cooccurrence"
        else:
            chosen, source = [], "popularity"
        if len(chosen) < k:  # too little history: fill with what is popular
            popular = [str(item) for item in champion.card.get("popular", [])]
            chosen += [i for i in popular if i not in excluded and i not in chosen][
                : k - len(chosen)
            ]
        return {"user_id": user_id, "items": chosen, "source": source, "version": champion.version}

    def _champion(self, model: str) -> Champion:
        return self._deployment(model).champion

    def _deployment(self, model: str) -> Deployment[Champion]:
        deployment = self.champions.deployment(model, wait_s=FIRST_LOAD_WAIT_S)
        if deployment is None:
            raise NoChampion(
                f"{model} has no champion yet: train it (POST /api/models/{model}/train), "
                "or wait a moment for the one just trained to load"
            )
        return deployment

    def _decode(
        self, contract: Contract, record: Any, at: int, now: dt.datetime
    ) -> tuple[Any, dt.datetime]:
        moment = now
        data = record
        if isinstance(record, dict) and _ENVELOPE_KEYS <= record.keys():
            if record.get("type") not in (None, contract.event_type):
                raise BadScoreRequest(f"record {at}: type is {contract.event_type}")
            data = record["data"]
            if record.get("time") is not None:
                try:
                    moment = dt.datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
                except ValueError:
                    raise BadScoreRequest(f"record {at}: time is an RFC 3339 time") from None
                if moment.tzinfo is None:
                    raise BadScoreRequest(f"record {at}: time needs its zone")
        try:
            decoded = self._decoders[contract.event_type].decode(msgspec.json.encode(data))
        except msgspec.ValidationError as error:
            raise BadScoreRequest(f"record {at}: {error}".replace("`$", "`data")) from None
        return decoded, moment


def _records(body: bytes) -> list[Any]:
    if len(body) > MAX_BODY_BYTES:
        raise BadScoreRequest(f"the body is over {MAX_BODY_BYTES} bytes")
    try:
        parsed = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise BadScoreRequest(f"the body is not JSON: {error}") from None
    records = parsed if isinstance(parsed, list) else [parsed]
    if not records or len(records) > MAX_RECORDS:
        raise BadScoreRequest(f"send 1 to {MAX_RECORDS} records")
    return records


def _answer(
    champion: Champion, score: float, features: np.ndarray, contributions: np.ndarray | None
) -> dict[str, Any]:
    reasons = []
    if contributions is not None:
        for j in np.argsort(-contributions, kind="stable")[:TOP_FEATURES]:
            if contributions[j] > 0:
                reasons.append(
                    {
                        "feature": champion.features[j],
                        "value": float(features[j]),
                        "contribution": round(float(contributions[j]), 6),
                    }
                )
    flagged = score >= champion.threshold
    return {
        "score": score,
        "decision": "flag" if flagged else "pass",
        "threshold": champion.threshold,
        "reasons": reasons,
        "model": champion.name,
        "version": champion.version,
    }
