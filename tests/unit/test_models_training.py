"""Training the three models from simulated history: each version registered with its metrics,
signature and training data, its ONNX graph predicting what the native model predicts, and
the first version the champion; too little data is refused with what to do."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.traffic import luhn_complete
from embedded.documents.store import DocumentStore
from shared.features.base import epoch_seconds
from shared.features.interactions import InteractionFeatures
from shared.features.offline import point_in_time
from shared.features.online import FEATURES_CONTAINER, OnlineFeatures
from shared.features.payments import PaymentFeatures
from shared.models import fraud
from shared.models.artifacts import ArtifactExists, ArtifactNotFound, LocalArtifacts
from shared.models.champions import ChampionCache
from shared.models.datasets import MissingData, Reads, bronze_rows
from shared.models.deployment import CHAMPION
from shared.models.onnx_export import probabilities, scores, session
from shared.models.recommendations import history_weights
from shared.models.registry import MODELS_CONTAINER, ModelRegistry, RegistryUnavailable
from shared.models.service import Models
from shared.models.serving import BadScoreRequest, NoChampion, Serving
from shared.models.training import ModelTraining, TrainingRequest, UnknownModel
from shared.pipeline.lake import Lake
from tests.modeldata import land_history, refresh, trained_models

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("models") / "lake"
    land_history(lake, days=4, rate=0.5, seed=3, label_delay_scale=0.2)
    refresh(lake)
    return lake


@pytest.fixture(scope="module")
def trained(history: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    return trained_models(history, tmp_path_factory.mktemp("registry"))


@pytest.mark.parametrize("name", ["fraud", "maintenance", "recommendations"])
def test_each_model_is_registered_as_the_first_champion(trained: Models, name: str) -> None:
    model = trained.registry.get_model(name)
    assert model.latest_version == 1 and model.aliases == {CHAMPION: 1}
    version = trained.registry.get_version(name, 1)
    assert version.run_id == f"run-{name}"
    assert version.metrics["onnx_max_difference"] <= 1e-5
    assert version.training_data and all(v >= 0 for v in version.training_data.values())
    assert version.signature["inputs"] and version.code_version
    card = json.loads(trained.artifacts.get(f"{name}/runs/run-{name}/card.json"))
    assert card


def test_the_classifiers_learn_from_late_labels(trained: Models) -> None:
    fraud_metrics = trained.registry.get_version("fraud", 1).metrics
    assert fraud_metrics["pr_auc"] > 0.5 and fraud_metrics["roc_auc"] > 0.9
    maintenance_metrics = trained.registry.get_version("maintenance", 1).metrics
    assert maintenance_metrics["pr_auc"] > maintenance_metrics["holdout_positive_rate"] + 0.2
    recommendations = trained.registry.get_version("recommendations", 1).metrics
    assert recommendations["hit_rate_at_10"] > 0.1 and recommendations["items"] > 100


def test_the_onnx_file_scores_as_the_native_model(trained: Models, history: Path) -> None:
    graph = session(trained.onnx_file("fraud", 1))
    native = trained.artifacts.get("fraud/runs/run-fraud/model.lgb.txt").decode()
    import lightgbm

    booster = lightgbm.Booster(model_str=native)
    rows = bronze_rows(Lake(str(history)), Reads(), "payment.transaction", fraud.COLUMNS)[:2000]
    features = PaymentFeatures()
    x = np.asarray(
        [[found[n] for n in features.numeric] for _, found in point_in_time(features, rows)],
        dtype=np.float32,
    )
    assert np.max(np.abs(probabilities(graph, x) - booster.predict(x))) <= 1e-5
    card = json.loads(trained.artifacts.get("recommendations/runs/run-recommendations/card.json"))
    similarity = np.frombuffer(
        trained.artifacts.get("recommendations/runs/run-recommendations/similarity.f32"),
        dtype=np.float32,
    ).reshape(len(card["items"]), len(card["items"]))
    history_vector = np.zeros((1, len(card["items"])), dtype=np.float32)
    history_vector[0, :3] = history_weights(3)
    recommender = session(trained.onnx_file("recommendations", 1))
    assert np.allclose(scores(recommender, history_vector), history_vector @ similarity, atol=1e-5)


def test_a_second_training_is_a_new_version_and_leaves_the_champion(
    trained: Models, history: Path
) -> None:
    version = trained.training.train(TrainingRequest("recommendations", run_id="again"))
    assert version.version == 2
    assert trained.registry.get_model("recommendations").aliases == {CHAMPION: 1}
    # The same run again (an activity retried after it registered): the same version.
    again = trained.training.train(TrainingRequest("recommendations", run_id="again"))
    assert again.version == 2 and len(trained.registry.list_versions("recommendations")) == 2


def test_missing_data_and_unknown_models_are_refused_with_what_to_do(tmp_path: Path) -> None:
    registry = ModelRegistry(DocumentStore(tmp_path / "d.sqlite3").container(MODELS_CONTAINER))
    artifacts = LocalArtifacts(tmp_path / "models")
    training = ModelTraining(Lake(str(tmp_path / "empty-lake")), registry, artifacts)
    for name, hint in (
        ("fraud", "backfill-days"),
        ("maintenance", "backfill-days"),
        ("recommendations", "medallion"),
    ):
        with pytest.raises(MissingData, match=hint):
            training.train(TrainingRequest(name))
    with pytest.raises(UnknownModel, match="fraud, maintenance, recommendations"):
        training.train(TrainingRequest("churn"))


def test_too_few_labels_are_refused_naming_the_window(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    land_history(
        lake,
        days=0.5,
        rate=0.2,
        seed=5,
        label_delay_scale=0.05,
        end=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        fraud_rate=0.0,
    )
    refresh(lake)
    with pytest.raises(MissingData, match="positive examples"):
        fraud.train(Lake(str(lake)), Reads(), maturity=dt.timedelta(hours=1))


def test_artifacts_are_written_once_and_read_back(tmp_path: Path) -> None:
    store = LocalArtifacts(tmp_path / "models")
    store.put("m/runs/r/model.onnx", b"graph")
    assert store.get("m/runs/r/model.onnx") == b"graph"
    with pytest.raises(ArtifactExists):
        store.put("m/runs/r/model.onnx", b"other")
    assert store.get("m/runs/r/model.onnx") == b"graph"
    with pytest.raises(ArtifactNotFound):
        store.get("m/runs/r/missing")
    assert not list((tmp_path / "models" / "m" / "runs" / "r").glob("*.partial"))


@pytest.fixture
def serving(trained: Models, tmp_path: Path) -> Serving:
    features = OnlineFeatures(DocumentStore(tmp_path / "f.sqlite3").container(FEATURES_CONTAINER))
    return Serving(features, ChampionCache(trained, background=False))


ZONELESS = {"specversion": "1.0", "time": "2026-12-07T10:00:00"}


def _payment(n: int, amount: float, **data: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"t{n}",
        "account_id": "acct-served",
        "card_number": luhn_complete("411111111111111"),
        "amount": amount,
        "currency": "EUR",
        "merchant_id": "m-1",
        "merchant_category": "5411",
        "country": "FR",
        "channel": "pos",
        **data,
    }


def test_a_score_reads_the_accounts_online_features_and_moves_nothing(
    serving: Serving, trained: Models
) -> None:
    now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    features = PaymentFeatures()
    history = [
        {
            **_payment(n, 300.0, channel="ecommerce"),
            "t": epoch_seconds(now) - 60 + n,
            "partition": 0,
            "sequence_number": n,
        }
        for n in range(8)
    ]
    serving.features.commit(serving.features.compute(features, history))
    record = _payment(99, 450.0, channel="ecommerce")
    [answer] = serving.score("fraud", json.dumps(record).encode(), now)
    state = serving.features.state(features, "acct-served")
    found = features.features(state, {**record, "t": epoch_seconds(now)})
    assert found["count_10m"] == 9.0  # the eight before, and this one
    champion = ChampionCache(trained, background=False).get("fraud")
    assert champion is not None
    x = np.asarray([[found[n] for n in champion.features]], dtype=np.float32)
    assert answer["score"] == pytest.approx(float(champion.probabilities(x)[0]), abs=1e-7)
    assert answer["decision"] == ("flag" if answer["score"] >= answer["threshold"] else "pass")
    assert (answer["model"], answer["version"]) == ("fraud", 1)
    assert serving.features.state(features, "acct-served") == state  # nothing moved
    envelope = {
        "specversion": "1.0",
        "type": "payment.transaction",
        "time": now.isoformat(),
        "id": "x",
        "source": "/s",
        "data": record,
    }
    batch = serving.score("fraud", json.dumps([envelope, record]).encode(), now)
    assert [r["score"] for r in batch] == pytest.approx([answer["score"]] * 2, abs=1e-7)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "JSON"),
        (b"[]", "1 to 100"),
        (json.dumps([_payment(n, 1.0) for n in range(101)]).encode(), "1 to 100"),
        (json.dumps(_payment(1, "ten")).encode(), "amount"),
        (json.dumps(_payment(1, -5.0)).encode(), "amount"),
        (json.dumps(_payment(1, 5.0, country="XX")).encode(), "country"),
        (json.dumps(_payment(1, 5.0, card_number="4111111111111112")).encode(), "Luhn"),
        (json.dumps([_payment(1, 5.0), _payment(2, 5.0, extra=1)]).encode(), "record 1"),
        (json.dumps({"specversion": "1.0", "type": "iot.telemetry", "data": {}}).encode(), "type"),
        (
            json.dumps(
                {"specversion": "1.0", "time": "2026-12-07T10:00:00", "data": _payment(1, 5.0)}
            ).encode(),
            "zone",
        ),
        (b"7", "record 0"),
        (b" " * 300_000, "bytes"),
    ],
)
def test_records_that_cannot_be_scored_are_refused_naming_the_field(
    serving: Serving, body: bytes, named: str
) -> None:
    with pytest.raises(BadScoreRequest, match=named):
        serving.score("fraud", body, dt.datetime.now(dt.UTC))


@pytest.mark.parametrize(
    "time",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999-12:00", "1970-01-01T00:00:00Z"],
)
def test_extreme_event_times_are_scored_not_refused(serving: Serving, time: str) -> None:
    record = {"specversion": "1.0", "time": time, "data": _payment(7, 12.5)}
    [answer] = serving.score("fraud", json.dumps(record).encode(), dt.datetime.now(dt.UTC))
    assert 0.0 <= answer["score"] <= 1.0


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"amount": 1e309}, "JSON"),  # json.dumps writes Infinity, which is not JSON
        ({"amount": 10**400}, "amount"),
        ({"amount": 1e16}, "amount"),
        ({"account_id": "a" * 129}, "account_id"),
        ({"card_number": "4111 1111 1111 1111 1111"}, "card_number"),
        ({"channel": "\ud800"}, "JSON"),  # a lone surrogate: msgspec refuses the text
    ],
)
def test_hostile_values_are_refused_naming_the_field(
    serving: Serving, data: dict[str, Any], named: str
) -> None:
    body = json.dumps({**_payment(8, 5.0), **data}).encode()
    with pytest.raises(BadScoreRequest, match=named):
        serving.score("fraud", body, dt.datetime.now(dt.UTC))


def test_recommendations_follow_recent_items_and_leave_out_purchases(
    serving: Serving, trained: Models
) -> None:
    champion = serving.champions.get("recommendations")
    assert champion is not None
    items = champion.card["items"]
    t0 = epoch_seconds(dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC))
    rows = [
        {
            "user_id": "u-served",
            "item_id": items[0],
            "action": "view",
            "session_id": "s1",
            "t": t0,
            "partition": 0,
            "sequence_number": 1,
        },
        {
            "user_id": "u-served",
            "item_id": items[1],
            "action": "purchase",
            "session_id": "s1",
            "t": t0 + 1,
            "partition": 0,
            "sequence_number": 2,
        },
    ]
    serving.features.commit(serving.features.compute(InteractionFeatures(), rows))
    answer = serving.recommend("u-served", 10)
    assert answer["source"] == "cooccurrence" and len(answer["items"]) == 10
    assert not {items[0], items[1]} & set(answer["items"])
    similarity = np.frombuffer(
        trained.artifacts.get("recommendations/runs/run-recommendations/similarity.f32"),
        dtype=np.float32,
    ).reshape(len(items), len(items))
    history = np.zeros(len(items), dtype=np.float32)
    history[1], history[0] = history_weights(2)  # the purchase is the most recent
    expected = [items[i] for i in np.argsort(-(history @ similarity), kind="stable") if i > 1]
    assert answer["items"][:3] == expected[:3]
    unknown = serving.recommend("nobody", 5)
    assert unknown == {
        "user_id": "nobody",
        "items": champion.card["popular"][:5],
        "source": "popularity",
        "version": 1,
    }


def test_without_a_champion_scoring_says_how_to_get_one(tmp_path: Path) -> None:
    registry = ModelRegistry(DocumentStore(tmp_path / "d.sqlite3").container(MODELS_CONTAINER))
    artifacts = LocalArtifacts(tmp_path / "models")
    models = Models(registry, artifacts, ModelTraining(Lake(str(tmp_path)), registry, artifacts))
    features = OnlineFeatures(DocumentStore(tmp_path / "f.sqlite3").container(FEATURES_CONTAINER))
    serving = Serving(features, ChampionCache(models, background=False))
    with pytest.raises(NoChampion, match="POST /api/models/fraud/train"):
        serving.score("fraud", json.dumps(_payment(1, 5.0)).encode(), dt.datetime.now(dt.UTC))
    with pytest.raises(NoChampion, match="recommendations"):
        serving.recommend("u", 3)


def test_a_training_retried_after_a_failure_midway_registers_one_version(
    history: Path, tmp_path: Path
) -> None:
    """Files written and then the registry down: the retry writes its own files beside them;
    a retry after the version was registered returns it (and makes the first a champion)."""
    lake = Lake(str(history))
    store = DocumentStore(tmp_path / "documents.sqlite")
    registry = ModelRegistry(store.container(MODELS_CONTAINER))
    artifacts = LocalArtifacts(tmp_path / "artifacts")

    class Down(ModelRegistry):
        def create_version(self, *args: Any, **kwargs: Any) -> Any:
            raise RegistryUnavailable("503")

    request = TrainingRequest("maintenance", run_id="retrain:maintenance:http:1")
    with pytest.raises(RegistryUnavailable):
        ModelTraining(lake, Down(store.container(MODELS_CONTAINER)), artifacts).train(request)
    training = ModelTraining(lake, registry, artifacts)
    first = training.train(request)
    assert first.run_id.startswith("retrain-maintenance-http-1-") and first.version == 1
    assert artifacts.get(f"maintenance/runs/{first.run_id}/model.onnx")
    again = training.train(request)
    assert again.version == 1 and len(registry.list_versions("maintenance")) == 1
    assert registry.get_model("maintenance").aliases == {CHAMPION: 1}
