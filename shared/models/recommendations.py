"""The recommendations model: item-item co-occurrence (Jaccard of the sessions two items share,
from gold `item_pairs`), with popularity (gold `item_popularity`) for users without history.

Its ONNX graph is one MatMul: a user's recent items, weighted by recency, times the similarity
matrix, gives a score per item. Its card keeps the item vocabulary (the matrix's order) and
the most popular items. Measured on the users' last item, held out: the hit rate at 10 of the
items recommended from the ones before it.
"""

from __future__ import annotations

import numpy as np

from shared.models.datasets import MissingData, Reads
from shared.models.onnx_export import (
    HISTORY_INPUT,
    SCORES,
    check_close,
    cooccurrence_to_onnx,
    scores,
    session,
)
from shared.models.trained import TrainedModel
from shared.pipeline.lake import Lake

NAME = "recommendations"
MAX_ITEMS = 5_000  # the most popular items make the vocabulary: the matrix is items x items
POPULAR = 100
RECENT = 10  # items of history a recommendation reads, most recent weighing most
K = 10


def history_weights(count: int) -> list[float]:
    """The weight of each of a user's recent items, most recent first."""
    return [0.8**position for position in range(min(count, RECENT))]


def train(lake: Lake, reads: Reads) -> TrainedModel:
    popularity = reads.query(
        lake,
        "gold",
        "item_popularity",
        "SELECT item_id, popularity_score FROM source "
        "ORDER BY popularity_score DESC, item_id LIMIT ?",
        [MAX_ITEMS],
    )
    pairs = reads.query(lake, "gold", "item_pairs", "SELECT item_a, item_b, jaccard FROM source")
    if popularity is None or pairs is None or popularity.num_rows == 0:
        raise MissingData(
            "no gold item_popularity or item_pairs yet: post interactions and run the "
            "medallion pipeline (POST /api/pipelines/medallion/runs)"
        )
    items = popularity.column("item_id").to_pylist()
    index = {item: position for position, item in enumerate(items)}
    similarity = np.zeros((len(items), len(items)), dtype=np.float32)
    for a, b, jaccard in zip(
        *(pairs.column(c).to_pylist() for c in ("item_a", "item_b", "jaccard")), strict=True
    ):
        if a in index and b in index:
            similarity[index[a], index[b]] = similarity[index[b], index[a]] = jaccard
    graph = cooccurrence_to_onnx(similarity)
    history = _sample_histories(len(items))
    worst = check_close(history @ similarity, scores(session(graph), history), NAME)
    metrics = {"items": float(len(items)), "onnx_max_difference": worst}
    metrics.update(_hit_rate(lake, reads, index, similarity))
    return TrainedModel(
        name=NAME,
        onnx=graph,
        native=similarity.tobytes(),
        native_file="similarity.f32",
        metrics=metrics,
        params={"algorithm": "item-item co-occurrence (Jaccard)", "recent": str(RECENT)},
        signature={
            "inputs": [{"name": HISTORY_INPUT, "type": "float32", "shape": [-1, len(items)]}],
            "outputs": [{"name": SCORES, "type": "float32", "shape": [-1, len(items)]}],
        },
        input_example={"recent_items": items[:3]},
        card={"items": items, "popular": items[:POPULAR], "k": K},
    )


def _sample_histories(items: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    history = np.zeros((min(64, max(1, items)), items), dtype=np.float32)
    for row in history:
        for position, weight in zip(
            rng.choice(items, min(RECENT, items), replace=False),
            history_weights(RECENT),
            strict=False,
        ):
            row[position] = weight
    return history


def _hit_rate(
    lake: Lake, reads: Reads, index: dict[str, int], similarity: np.ndarray
) -> dict[str, float]:
    """Each user's last item, recommended (or not) in the top K from the items before it."""
    table = reads.query(
        lake,
        "silver",
        "app_interaction",
        "SELECT user_id, item_id FROM source ORDER BY user_id, event_time, event_id",
    )
    if table is None:
        return {}
    by_user: dict[str, list[str]] = {}
    for user, item in zip(
        table.column("user_id").to_pylist(), table.column("item_id").to_pylist(), strict=True
    ):
        seen = by_user.setdefault(user, [])
        if not seen or seen[-1] != item:
            seen.append(item)
    hits = tried = 0
    for seen in by_user.values():
        if len(seen) < 2 or seen[-1] not in index:
            continue
        recent = list(dict.fromkeys(reversed(seen[:-1])))
        vector = np.zeros(len(index), dtype=np.float32)
        for item, weight in zip(recent, history_weights(len(recent)), strict=False):
            if item in index:
                vector[index[item]] = weight
        ranked = _top(vector @ similarity, set(recent) & index.keys(), index, K)
        hits += index[seen[-1]] in ranked
        tried += 1
    return {"hit_rate_at_10": hits / tried if tried else 0.0, "users_evaluated": float(tried)}


def _top(score: np.ndarray, exclude: set[str], index: dict[str, int], k: int) -> set[int]:
    for item in exclude:
        score[index[item]] = -np.inf
    return {int(i) for i in np.argsort(-score, kind="stable")[:k] if np.isfinite(score[i])}
