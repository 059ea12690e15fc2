"""The model registry on MLflow, against a real MLflow tracking server on loopback (one per
session, `tests/mlflow_server.py`), through the real `mlflow` client:

- the conformance suite: the document registry's tests whose semantics both adapters share,
  collected again here with this module's `registry` fixture (both adapters), and those whose
  set-up is the document store's, rewritten for both;
- what MLflow holds, and where (the mapping of `shared/models/mlflow_registry.py`), and the
  alias round trip of issue 14;
- what MLflow refuses or does its own way (its key rule, its tag limit, large JSON);
- training into MLflow (the ONNX graph, native model and card as the run's artifacts) and
  serving from there: the champion loads from MLflow and scores as the native model;
- the models API on a platform bootstrapped with MLFLOW_TRACKING_URI, and MLflow unreachable.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import pytest

from embedded.documents.store import DocumentStore
from functions import models as model_functions
from shared.bootstrap import bootstrap
from shared.config import load_settings
from shared.features.offline import point_in_time
from shared.features.payments import PaymentFeatures
from shared.models import fraud
from shared.models.artifacts import ArtifactError, ArtifactExists, ArtifactNotFound, LocalArtifacts
from shared.models.champions import load_version
from shared.models.datasets import Reads, bronze_rows
from shared.models.deployment import CHAMPION
from shared.models.mlflow_api import MlflowClient
from shared.models.mlflow_artifacts import MlflowArtifacts
from shared.models.mlflow_registry import MlflowRegistry, open_mlflow
from shared.models.registry import (
    MODELS_CONTAINER,
    InvalidRegistryInput,
    ModelNotFound,
    ModelRegistry,
    ModelVersion,
    Registry,
    RegistryUnavailable,
)
from shared.models.service import Models
from shared.models.training import ModelTraining, TrainingRequest
from shared.pipeline.lake import Lake
from tests.devhost_process import free_port
from tests.functions import blueprint_function
from tests.mlflow_server import QUIET_MLFLOW, MlflowServer
from tests.modeldata import land_history, refresh
from tests.unit.test_models_registry import (  # noqa: F401 - collected here on both adapters
    BAD_INPUTS,
    register,
    test_alias_names_are_validated,
    test_alias_names_that_are_fine,
    test_aliases_are_set_moved_and_deleted,
    test_an_alias_to_a_missing_version_or_model_is_refused,
    test_an_empty_registry_lists_nothing,
    test_metrics_come_back_as_floats,
    test_missing_models_and_versions_are_their_own_errors,
    test_model_and_version_tags_are_set_and_overwritten,
    test_updates_leave_the_rest_of_a_version_alone,
    test_validation_status_moves_through_its_vocabulary,
    test_version_numbers_are_positive_integers,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
MakeRegistry = Callable[..., Registry]


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    server = MlflowServer()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def quiet_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in QUIET_MLFLOW.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def client(mlflow_server: MlflowServer) -> MlflowClient:
    """MLflow's own client, emptied: no registered model, no active run."""
    found = MlflowClient(mlflow_server.url, registry_uri=mlflow_server.url)
    for model in found.search_registered_models(max_results=1000):
        found.delete_registered_model(model.name)
    experiments = [experiment.experiment_id for experiment in found.search_experiments()]
    for run in found.search_runs(experiments, max_results=50000) if experiments else []:
        found.delete_run(run.info.run_id)
    return found


@pytest.fixture
def lake_files(tmp_path: Path) -> LocalArtifacts:
    return LocalArtifacts(tmp_path / "lake-models")


@pytest.fixture(params=["document", "mlflow"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_registry(
    request: pytest.FixtureRequest, adapter: str, tmp_path: Path, lake_files: LocalArtifacts
) -> MakeRegistry:
    """A new registry instance on the test's store each call, as separate hosts have."""
    if adapter == "document":
        store = DocumentStore(tmp_path / "documents.sqlite3")
        request.addfinalizer(store.close)
        return lambda **options: ModelRegistry(store.container(MODELS_CONTAINER), **options)
    server = request.getfixturevalue("mlflow_server")
    request.getfixturevalue("client")  # emptied first
    return lambda **options: MlflowRegistry(open_mlflow(server.url, lake_files)[0].runs, **options)


@pytest.fixture
def registry(make_registry: MakeRegistry) -> Registry:
    return make_registry()


@pytest.fixture
def on_mlflow(
    mlflow_server: MlflowServer, client: MlflowClient, lake_files: LocalArtifacts
) -> Models:
    """The MLflow registry and its files, with training on an empty lake."""
    registry, artifacts = open_mlflow(mlflow_server.url, lake_files)
    training = ModelTraining(Lake(str(lake_files.root / "no-lake")), registry, artifacts)
    return Models(registry, artifacts, training)


# The conformance suite: what the document store's set-up did, rewritten for both adapters


def test_a_version_reads_back_as_it_was_registered(registry: Registry) -> None:
    created = [register(registry, run_id=f"run-{n}") for n in range(3)]
    assert [v.version for v in created] == [1, 2, 3]
    first = registry.get_version("fraud", 1)
    assert first == created[0]
    assert dataclasses.replace(first, created_at="") == ModelVersion(
        name="fraud",
        version=1,
        created_at="",
        status="READY",
        source="file:///lake/models/fraud/next",
        run_id="run-0",
        metrics={"auc": 0.91, "pr_auc": 0.5},
        params={"max_depth": "6"},
        tags={},
        signature={
            "inputs": [{"name": "amount", "type": "double"}],
            "outputs": [{"name": "score", "type": "double"}],
        },
        input_example={"amount": [12.5, 99.0]},
        training_data={"silver.transactions": 7},
        code_version="abc123",
    )
    assert ISO.fullmatch(first.created_at)
    model = registry.get_model("fraud")
    assert (model.name, model.latest_version, model.aliases, model.tags) == ("fraud", 3, {}, {})
    assert ISO.fullmatch(model.created_at) and model.created_at <= model.updated_at


def test_versions_of_one_run_id_keep_their_own_data(registry: Registry) -> None:
    first = register(registry, metrics={"auc": 0.8}, params={"depth": "4"})
    second = register(registry, metrics={"auc": 0.9}, params={"depth": "6"})  # run-1 again
    assert registry.get_version("fraud", 1) == first
    assert registry.get_version("fraud", 2) == second
    assert (first.run_id, second.run_id) == ("run-1", "run-1")
    assert (first.metrics, first.params) == ({"auc": 0.8}, {"depth": "4"})
    assert (second.metrics, second.params) == ({"auc": 0.9}, {"depth": "6"})


def test_concurrent_creators_get_every_number_exactly_once(make_registry: MakeRegistry) -> None:
    threads, per_thread = 4, 5
    errors: list[BaseException] = []
    created: list[ModelVersion] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def create(number: int) -> None:
        registry = make_registry()  # an instance each, as separate hosts have
        start.wait()
        try:
            for n in range(per_thread):
                version = register(registry, run_id=f"writer-{number}-{n}")
                with lock:
                    created.append(version)
        except BaseException as error:  # noqa: B036 - reported below
            errors.append(error)

    workers = [threading.Thread(target=create, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    total = threads * per_thread
    assert sorted(v.version for v in created) == list(range(1, total + 1))
    registry = make_registry()
    listed = registry.list_versions("fraud")
    assert [v.version for v in listed] == list(range(total, 0, -1))
    assert {v.version: v.run_id for v in listed} == {v.version: v.run_id for v in created}
    assert registry.get_model("fraud").latest_version == total


def test_models_and_versions_are_listed_across_pages(make_registry: MakeRegistry) -> None:
    registry = make_registry(page_size=2)
    names = ["zeta", "alpha", "mid", "beta", "omega"]
    for name in names:
        register(registry, name)
    for n in range(4):
        register(registry, "beta", run_id=f"run-{n}")
    assert [m.name for m in registry.list_models()] == sorted(names)
    assert {m.name: m.latest_version for m in registry.list_models()}["beta"] == 5
    versions = registry.list_versions("beta")
    assert [v.version for v in versions] == [5, 4, 3, 2, 1]
    assert [v.run_id for v in versions] == ["run-3", "run-2", "run-1", "run-0", "run-1"]
    assert [v.version for v in registry.list_versions("zeta")] == [1]


def _nothing_written(registry: Registry, client: MlflowClient | None) -> None:
    assert registry.list_models() == []
    if client is not None:
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert client.search_runs(experiments) == []


@pytest.mark.parametrize(("field", "changes"), BAD_INPUTS, ids=[f for f, _ in BAD_INPUTS])
def test_every_invalid_input_is_refused_before_anything_is_written(
    request: pytest.FixtureRequest,
    registry: Registry,
    adapter: str,
    field: str,
    changes: dict[str, Any],
) -> None:
    arguments = dict(changes)
    name = arguments.pop("name", "fraud")
    with pytest.raises(InvalidRegistryInput, match=re.escape(field)) as raised:
        register(registry, name, **arguments)
    assert len(str(raised.value)) < 160  # names the field, never echoes the value
    client = request.getfixturevalue("client") if adapter == "mlflow" else None
    _nothing_written(registry, client)


def test_a_version_past_the_size_limit_is_refused_by_both(
    request: pytest.FixtureRequest, registry: Registry, adapter: str
) -> None:
    params = {f"p{n}": "x" * 6000 for n in range(400)}
    with pytest.raises(InvalidRegistryInput, match="bytes"):
        register(registry, params=params)
    client = request.getfixturevalue("client") if adapter == "mlflow" else None
    _nothing_written(registry, client)


# What MLflow holds, and where; the alias round trip


def test_a_version_and_its_alias_round_trip_through_mlflow(
    mlflow_server: MlflowServer, client: MlflowClient, on_mlflow: Models
) -> None:
    registry = on_mlflow.registry
    on_mlflow.artifacts.put("fraud/runs/train-1/model.onnx", b"graph")
    created = register(
        registry,
        source=on_mlflow.artifacts.uri("fraud/runs/train-1"),
        run_id="train-1",
        tags={"onnx": "model.onnx"},
        description="the first",
        training_data={"silver.payment_transaction": 7, "gold.merchant_daily": 3},
    )
    model = registry.set_alias("fraud", CHAMPION, created.version)
    assert model.aliases == {CHAMPION: 1}

    # Another process (a new client) reads the version through its alias, whole.
    again, _ = open_mlflow(mlflow_server.url, LocalArtifacts(Path("/nonexistent")))
    assert again.get_version_by_alias("fraud", CHAMPION) == created
    assert again.get_model("fraud").aliases == {CHAMPION: 1}

    # MLflow itself holds it, in its own terms.
    version = client.get_model_version_by_alias("fraud", CHAMPION)
    assert (version.version, version.tags, version.description) == (
        "1",
        {"onnx": "model.onnx"},
        "the first",
    )
    run = client.get_run(version.run_id)
    assert version.source == run.info.artifact_uri == created.source
    assert run.info.run_name == "train-1" and run.info.status == "FINISHED"
    assert run.data.metrics == {"auc": 0.91, "pr_auc": 0.5}
    assert run.data.params == {"max_depth": "6"}
    assert json.loads(run.data.tags["platform.signature"]) == created.signature
    assert run.data.tags["platform.code_version"] == "abc123"
    datasets = {d.dataset.name: json.loads(d.dataset.source) for d in run.inputs.dataset_inputs}
    assert datasets["silver.payment_transaction"]["delta_table_version"] == 7
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["model.onnx"]

    # The alias moves and comes back; the versions stay as they were.
    second = register(registry, run_id="train-2")
    registry.set_alias("fraud", CHAMPION, 2)
    assert client.get_model_version_by_alias("fraud", CHAMPION).version == "2"
    assert again.get_version_by_alias("fraud", CHAMPION) == second
    registry.set_alias("fraud", CHAMPION, 1)
    assert again.get_version_by_alias("fraud", CHAMPION) == created
    registry.set_validation_status("fraud", 2, "rejected", ["auc 0.80 < 0.91"])
    tag = client.get_model_version("fraud", "2").tags["platform.validation"]
    assert json.loads(tag) == {"status": "rejected", "reasons": ["auc 0.80 < 0.91"]}


def test_a_version_registered_outside_the_platform_reads_with_defaults(
    client: MlflowClient, on_mlflow: Models
) -> None:
    experiment = client.create_experiment(f"elsewhere-{uuid.uuid4().hex}")
    run = client.create_run(experiment)
    client.log_batch(run.info.run_id, params=[], metrics=[], tags=[])
    client.create_registered_model("churn", tags={"team": "growth"})
    client.create_model_version("churn", run.info.artifact_uri, run.info.run_id)
    version = on_mlflow.registry.get_version("churn", 1)
    assert (version.run_id, version.source) == (run.info.run_id, run.info.artifact_uri)
    assert (version.signature, version.input_example, version.training_data) == ({}, None, {})
    assert (version.validation_status, version.validation_reasons) == ("none", ())
    assert on_mlflow.registry.get_model("churn").tags == {"team": "growth"}


def test_large_json_goes_to_an_artifact_and_many_entries_to_several_batches(
    client: MlflowClient, on_mlflow: Models
) -> None:
    inputs = [{"name": f"feature_{n:04d}_" + "x" * 40, "type": "float"} for n in range(400)]
    signature = {"inputs": inputs, "outputs": [{"type": "double"}]}
    params = {f"param_{n}": "é" * 500 for n in range(250)}  # escaped, 6 bytes a character
    metrics = {f"metric_{n}": n / 7 for n in range(1500)}
    created = register(on_mlflow.registry, signature=signature, params=params, metrics=metrics)
    again = on_mlflow.registry.get_version("fraud", 1)
    assert again == created
    assert (again.signature, again.params, again.metrics) == (signature, params, metrics)
    run_id = client.get_model_version("fraud", "1").run_id
    assert [f.path for f in client.list_artifacts(run_id, "platform")] == [
        "platform/signature.json"
    ]


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("metrics", {"metrics": {"auc@10": 0.5}}),
        ("params", {"params": {"a//b": "1"}}),
        ("params", {"params": {"/root": "1"}}),
        ("params", {"params": {"../up": "1"}}),
        ("tags", {"tags": {"platform.validation": "x"}}),
        ("tags", {"tags": {"emoji🙂": "x"}}),
    ],
)
def test_keys_mlflow_refuses_are_refused_before_anything_is_written(
    client: MlflowClient, on_mlflow: Models, field: str, changes: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRegistryInput, match=field) as raised:
        register(on_mlflow.registry, **changes)
    assert len(str(raised.value)) < 160
    _nothing_written(on_mlflow.registry, client)
    register(on_mlflow.registry)
    with pytest.raises(InvalidRegistryInput, match="tags"):
        on_mlflow.registry.set_version_tag("fraud", 1, "platform.validation", "passed")
    with pytest.raises(InvalidRegistryInput, match="tags"):
        on_mlflow.registry.set_model_tag("fraud", "a b/../c", "x")


def test_reasons_past_mlflow_s_tag_limit_are_refused(on_mlflow: Models) -> None:
    register(on_mlflow.registry)
    reasons = ["r" * 1000] * 100  # the document registry's limits, over MLflow's tag's
    with pytest.raises(InvalidRegistryInput, match="reasons"):
        on_mlflow.registry.set_validation_status("fraud", 1, "rejected", reasons)
    assert on_mlflow.registry.get_version("fraud", 1).validation_status == "none"


# The model files in MLflow


def test_run_files_are_written_once_to_mlflow_and_the_rest_to_the_lake(
    client: MlflowClient, on_mlflow: Models, lake_files: LocalArtifacts
) -> None:
    files = on_mlflow.artifacts
    with pytest.raises(ArtifactNotFound):
        files.uri("fraud/runs/r1")  # no run yet
    uri = files.put("fraud/runs/r1/model.onnx", b"\x08\x07graph")
    assert uri.startswith("mlflow-artifacts:/") and uri.endswith("/model.onnx")
    files.put("fraud/runs/r1/extra/notes.txt", b"n")
    with pytest.raises(ArtifactExists):
        files.put("fraud/runs/r1/model.onnx", b"other")
    assert files.get("fraud/runs/r1/model.onnx") == b"\x08\x07graph"
    assert files.get("fraud/runs/r1/extra/notes.txt") == b"n"
    for missing in ("fraud/runs/r1/card.json", "fraud/runs/r2/model.onnx", "fraud/runs/r1"):
        with pytest.raises(ArtifactNotFound):
            files.get(missing)
    run = client.search_runs([client.get_experiment_by_name("platform-model-fraud").experiment_id])
    assert [r.info.run_name for r in run] == ["r1"]
    assert files.uri("fraud/runs/r1") == run[0].info.artifact_uri
    files.put("fraud/batch/b1/job.json", b"{}")  # a job payload: beside the lake
    assert lake_files.get("fraud/batch/b1/job.json") == b"{}"
    assert files.uri("fraud/batch/b1/job.json") == lake_files.uri("fraud/batch/b1/job.json")
    for hostile in ("fraud/runs/../x", "fraud/runs/r1/../../x", "fraud/runs/r1/a b", "x/runs/."):
        with pytest.raises(ArtifactError):
            files.put(hostile, b"x")


# Training into MLflow and serving from it


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("mlflow-models") / "lake"
    land_history(lake, days=3, rate=0.5, seed=5, label_delay_scale=0.2)
    refresh(lake)
    return lake


def test_a_model_trained_into_mlflow_serves_from_it(
    client: MlflowClient, on_mlflow: Models, history: Path, tmp_path: Path
) -> None:
    training = dataclasses.replace(on_mlflow.training, lake=Lake(str(history)))
    version = training.train(
        TrainingRequest("fraud", run_id="train-fraud-1", label_maturity_hours=30)
    )
    assert (version.version, version.run_id) == (1, "train-fraud-1")
    assert on_mlflow.registry.get_model("fraud").aliases == {CHAMPION: 1}
    assert client.get_model_version_by_alias("fraud", CHAMPION).version == "1"
    run_id = client.get_model_version("fraud", "1").run_id
    stored = sorted(f.path for f in client.list_artifacts(run_id))
    assert stored == ["card.json", "model.lgb.txt", "model.onnx"]

    champion = load_version(on_mlflow, "fraud", 1, native=True)  # read from MLflow
    rows = bronze_rows(Lake(str(history)), Reads(), "payment.transaction", fraud.COLUMNS)[:2000]
    features = PaymentFeatures()
    x = np.asarray(
        [[found[n] for n in champion.features] for _, found in point_in_time(features, rows)],
        dtype=np.float32,
    )
    assert champion.native is not None
    assert np.max(np.abs(champion.probabilities(x) - champion.native.predict(x))) <= 1e-5
    local = client.download_artifacts(run_id, "model.onnx", str(tmp_path))
    assert on_mlflow.onnx_file("fraud", 1) == Path(local).read_bytes()


def call(function: str, **route: str) -> func.HttpResponse:
    headers = {"x-forwarded-for": "127.0.0.1"}  # the local developer, who holds every role
    request = func.HttpRequest("GET", "/api/x", body=b"", headers=headers, route_params=route)
    response: func.HttpResponse = blueprint_function(model_functions.bp, function)(request)
    return response


def test_the_models_api_reads_mlflow_when_it_is_the_registry(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    tmp_path: Path,
    installed: Callable[[Any], Any],
) -> None:
    settings = load_settings(
        {"PLATFORM_DATA_DIR": str(tmp_path / "data"), "MLFLOW_TRACKING_URI": mlflow_server.url}
    )
    platform = installed(bootstrap(settings))
    models = platform.models
    assert isinstance(models.registry, MlflowRegistry)
    assert isinstance(models.artifacts, MlflowArtifacts)
    models.artifacts.put("fraud/runs/r1/model.onnx", b"\x08\x07graph")
    register(models.registry, source=models.artifacts.uri("fraud/runs/r1"), run_id="r1")
    models.registry.set_alias("fraud", CHAMPION, 1)
    listed = json.loads(call("list_models").get_body())["models"]
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [
        ("fraud", 1, {CHAMPION: 1})
    ]
    detail = json.loads(call("get_model", name="fraud").get_body())
    assert detail["versions"][0]["run_id"] == "r1"
    answer = call("get_model_onnx", name="fraud", version="1")
    assert answer.status_code == 200 and answer.get_body() == b"\x08\x07graph"
    assert call("get_model_onnx", name="fraud", version="2").status_code == 404


def test_an_unreachable_mlflow_is_unavailable_not_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, installed: Callable[[Any], Any]
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    nowhere = f"http://127.0.0.1:{free_port()}"
    registry, files = open_mlflow(nowhere, LocalArtifacts(tmp_path))
    with pytest.raises(RegistryUnavailable):
        registry.get_model("fraud")
    with pytest.raises(RegistryUnavailable):
        files.get("fraud/runs/r1/model.onnx")
    assert not issubclass(RegistryUnavailable, ModelNotFound)  # a retry may fix it
    settings = load_settings(
        {"PLATFORM_DATA_DIR": str(tmp_path / "data"), "MLFLOW_TRACKING_URI": nowhere}
    )
    installed(bootstrap(settings))
    for function, route in [
        ("list_models", {}),
        ("get_model", {"name": "fraud"}),
        ("get_model_onnx", {"name": "fraud", "version": "1"}),
    ]:
        answer = call(function, **route)
        assert answer.status_code == 503, function
        assert "RegistryUnavailable" in json.loads(answer.get_body())["error"]
