"""Training through the batch engine: the job a Spark cluster gets (its payload and the app's own
code, written once; pinned libraries), the runner training with that code on a driver without
this package as local training does, the version the app registers from the run's result, and
the `train_challenger` orchestration that submits, polls, cancels and registers it."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
import re
import sys
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from orchestrations.medallion import CANCEL_EVENT
from orchestrations.model_training_remote import (
    CANCEL_TRAINING,
    FINISH_TRAINING,
    SUBMIT_TRAINING,
    TRAIN_CHALLENGER,
    TRAINING_STATE,
    model_train_finish,
    model_train_state,
    model_train_submit,
    train_challenger_orchestrator,
)
from orchestrations.models import TRAIN_ACTIVITY
from shared.batch import engine as batch_engine
from shared.batch import spark_runner
from shared.batch.duckdb_engine import DuckDBEngine
from shared.batch.engine import RunState, RunStatus, TrainingEngine, TrainingJob
from shared.bootstrap import Lazy, bootstrap
from shared.config import Adapter, BatchSettings, LakeSettings, load_settings
from shared.models import training_run
from shared.models.datasets import MissingData
from shared.models.remote_training import (
    CannotTrain,
    FinishTraining,
    SparkTraining,
    TrainingSubmission,
    spark_training,
)
from shared.models.service import Models
from shared.models.training import TrainingRequest, UnknownModel
from shared.models.training_code import (
    TrainingCodeError,
    training_code,
    training_libraries,
    training_modules,
)
from shared.pipeline.payloads import PayloadError
from tests.fakes.scoring import FakeScoringEngine
from tests.fakes.training import FakeTrainingEngine
from tests.lakedata import medallion_for, version
from tests.modeldata import land_history, refresh
from tests.orchestrator_replay import T0, History, names, scheduled
from tests.training_driver import models_beside, train_on_driver

pytestmark = [
    pytest.mark.unit,
    # The SDK warns once when it decodes a result the orchestrator gave no type for.
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type"),
]
NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
PROJECT = Path(__file__).resolve().parents[2]
RECORD = ("metrics", "params", "signature", "input_example", "training_data", "code_version")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remote-training") / "lake"
    land_history(root, days=2, rate=0.1, seed=5, label_delay_scale=0.2, fraud_rate=0.08, end=NOW)
    refresh(root)
    return root


@pytest.fixture
def models(lake: Path, tmp_path: Path) -> Models:
    return models_beside(lake, tmp_path / "registry")


@pytest.fixture
def engine() -> FakeTrainingEngine:
    return FakeTrainingEngine()


@pytest.fixture
def remote(models: Models, lake: Path, engine: FakeTrainingEngine) -> SparkTraining:
    return SparkTraining(models, LakeSettings(str(lake), Adapter.LOCAL), engine)


def _payload(submission: TrainingSubmission) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(submission.payload_uri).read_bytes())
    return loaded


def _succeeded(engine: FakeTrainingEngine, submission: TrainingSubmission) -> FinishTraining:
    engine.finish(submission.remote.run_id, RunStatus.SUCCEEDED)
    return FinishTraining(submission, engine.state(submission.remote.run_id))


# The job, its payload and its code.


def test_the_job_carries_its_payload_uri_and_the_payload_what_to_train(
    remote: SparkTraining, engine: FakeTrainingEngine, lake: Path
) -> None:
    request = TrainingRequest("fraud", "retrain:fraud:drift:w1", label_maturity_hours=30.0)
    submission = remote.submit(request)
    [job] = engine.trainings
    staging = submission.staging

    assert re.fullmatch(r"fraud/training/retrain-fraud-drift-w1-[0-9a-f]{12}", staging)
    assert job == TrainingJob(
        "fraud",
        f"{lake}/models/{staging}/job.json",
        run_key="retrain:fraud:drift:w1",
        libraries=training_libraries(),
    )
    assert job.argument == f"train:{submission.payload_uri}" == f"train:{job.payload_uri}"
    assert submission.remote == RunState("fake-spark", "run-1", RunStatus.PENDING)
    assert _payload(submission) == {
        "format": 1,
        "model": "fraud",
        "run_id": "retrain:fraud:drift:w1",
        "label_maturity_hours": 30.0,
        "lake": {"uri": str(lake), "adapter": "local", "emulator_endpoint": None},
        "staging": staging,
        "code_uri": f"{lake}/models/{staging}/code.zip",
        "entry": "shared.models.training_run:run_training",
    }
    assert Path(f"{lake}/models/{staging}/code.zip").read_bytes() == training_code()


def test_the_code_is_the_apps_own_training_modules_and_nothing_else(lake: Path) -> None:
    with zipfile.ZipFile(_zip(training_code(), lake.parent)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    assert {"shared/__init__.py", "shared/models/training.py", "embedded/__init__.py"} <= set(
        members
    )
    assert "shared/models/training_run.py" in members
    for member, source in members.items():
        assert source == (PROJECT / member).read_bytes(), member
    tops = {member.split("/")[1] for member in members if member.startswith("shared/")}
    assert "bootstrap.py" not in tops and "ai" not in tops
    assert set(training_modules()) == {
        member.removesuffix("/__init__.py").removesuffix(".py").replace("/", ".")
        for member in members
    }


def _zip(data: bytes, folder: Path) -> Path:
    path = folder / "code-under-test.zip"
    path.write_bytes(data)
    return path


def test_code_that_imports_what_the_cluster_lacks_is_refused() -> None:
    lacking = r"mlflow\S* imports \S+, which the cluster does not have: add its PyPI package"
    with pytest.raises(TrainingCodeError, match=lacking):
        training_modules("shared.models.mlflow_registry")


def test_the_libraries_are_pinned_to_requirements_txt() -> None:
    pins = dict(
        re.findall(r"^([a-z0-9_-]+)==([^ \\\n]+)", (PROJECT / "requirements.txt").read_text(), re.M)
    )
    libraries = dict(library.split("==") for library in training_libraries())
    assert libraries == {name: pins[name] for name in libraries}
    assert {"lightgbm", "scikit-learn", "onnx", "onnxmltools", "deltalake", "duckdb"} <= set(
        libraries
    )


def test_a_retried_submit_reuses_the_payload_and_the_run(
    remote: SparkTraining, engine: FakeTrainingEngine
) -> None:
    first = remote.submit(TrainingRequest("maintenance", "retrain:maintenance:retry"))
    changed = TrainingRequest("maintenance", "retrain:maintenance:retry", 12.0)
    again = remote.submit(changed)
    other = remote.submit(TrainingRequest("maintenance", "retrain:maintenance:other"))

    assert again.payload_uri == first.payload_uri and again.remote.run_id == first.remote.run_id
    assert _payload(again)["label_maturity_hours"] is None  # the payload first written
    assert len({job.idempotency_key() for job in engine.trainings}) == 2
    assert other.remote.run_id != first.remote.run_id


def test_an_unknown_model_is_refused_before_anything_is_written(
    remote: SparkTraining, engine: FakeTrainingEngine, lake: Path
) -> None:
    with pytest.raises(UnknownModel, match="no model named 'nope'"):
        remote.submit(TrainingRequest("nope", "retrain:nope:1"))
    assert engine.trainings == [] and not (lake / "models" / "nope").exists()


def test_the_engine_decides_where_training_runs(models: Models, lake: Path) -> None:
    settings = LakeSettings(str(lake), Adapter.LOCAL)
    batch = BatchSettings(poll_first_s=2.0, poll_max_s=8.0, run_timeout_s=90.0)
    assert spark_training(models, DuckDBEngine(), settings, batch) is None
    assert spark_training(models, FakeScoringEngine(), settings, batch) is None
    found = spark_training(models, FakeTrainingEngine(), settings, batch)
    assert found is not None and (found.polling.first_s, found.polling.timeout_s) == (2.0, 90.0)
    assert isinstance(FakeTrainingEngine(), TrainingEngine)


def test_a_training_job_is_never_a_scorings() -> None:
    job = TrainingJob("fraud", "/lake/models/fraud/training/x/job.json", run_key="r")
    scoring = batch_engine.ScoringJob("fraud", job.payload_uri, run_key="r")
    assert job.idempotency_key() != scoring.idempotency_key()
    assert job.argument.startswith(spark_runner.TRAINING_PREFIX)


# The runner on a driver, and the version the app registers.


def test_the_runner_trains_on_a_driver_without_the_package_as_local_training_does(
    remote: SparkTraining,
    models: Models,
    engine: FakeTrainingEngine,
    lake: Path,
    tmp_path: Path,
) -> None:
    submission = remote.submit(TrainingRequest("maintenance", "retrain:maintenance:drift:w2"))
    ran = train_on_driver(submission.payload_uri, tmp_path / "driver")
    result = ran["result"]
    local = models_beside(lake, tmp_path / "local").training.train(
        TrainingRequest("maintenance", "x")
    )

    assert re.search(r"/platform-training-[^/]+/code\.zip/shared/__init__\.py$", ran["shared"])
    run_id, folder = "retrain-maintenance-drift-w2", "maintenance/runs/retrain-maintenance-drift-w2"
    assert (result["model"], result["run_id"], result["error"]) == ("maintenance", run_id, "")
    assert {field: result[field] for field in RECORD} == {
        field: getattr(local, field) for field in RECORD
    }
    assert (
        result["tags"]
        == local.tags
        == {
            "onnx": "model.onnx",
            "native": "model.lgb.txt",
            "card": "card.json",
        }
    )
    assert result["training_data"] == {
        "silver.device_failure": version(lake, "silver", "device_failure"),
        "bronze.iot_telemetry": version(lake, "bronze", "iot_telemetry"),
    }
    assert sorted(result["files"]) == [f"{folder}/{file}" for file in sorted(local.tags.values())]
    for path, staged in result["files"].items():
        assert re.fullmatch(rf"{submission.staging}/[0-9a-f]{{12}}/{path}", staged)
    stored = json.loads((lake / "models" / submission.staging / "result.json").read_bytes())
    assert stored == result

    registered = remote.finish(_succeeded(engine, submission))

    assert (registered.version, registered.run_id) == (1, run_id)
    assert registered.source == models.artifacts.uri(folder)
    assert {field: getattr(registered, field) for field in RECORD} == {
        field: result[field] for field in RECORD
    }
    assert models.registry.get_model("maintenance").aliases == {"champion": 1}
    for path, staged in result["files"].items():
        assert models.artifacts.get(path) == models.artifacts.get(staged)
    assert models.onnx_file("maintenance", 1) == models.artifacts.get(f"{folder}/model.onnx")


def _trained_here(submission: TrainingSubmission) -> dict[str, Any]:
    """What the runner's entry answers for the submission, run in this process."""
    return training_run.run_training(_payload(submission))


def test_a_retried_finish_registers_nothing_twice_and_a_challenger_is_not_champion(
    remote: SparkTraining, models: Models, engine: FakeTrainingEngine
) -> None:
    models.training.train(TrainingRequest("maintenance", "retrain:maintenance:first"))
    submission = remote.submit(TrainingRequest("maintenance", "retrain:maintenance:second"))
    _trained_here(submission)
    done = _succeeded(engine, submission)

    first, again = remote.finish(done), remote.finish(done)

    assert first.version == again.version == 2
    assert [v.version for v in models.registry.list_versions("maintenance")] == [2, 1]
    assert models.registry.get_model("maintenance").aliases == {"champion": 1}


def test_a_run_repeated_on_its_payload_answers_its_first_result(
    remote: SparkTraining, lake: Path
) -> None:
    submission = remote.submit(TrainingRequest("maintenance", "retrain:maintenance:repair"))
    first = _trained_here(submission)
    again = _trained_here(submission)
    assert again == first
    attempts = [p for p in (lake / "models" / submission.staging).iterdir() if p.is_dir()]
    assert len(attempts) == 1


def test_a_model_without_enough_data_is_a_result_that_says_why(
    models: Models, engine: FakeTrainingEngine, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-lake"
    remote = SparkTraining(
        models_beside(empty, tmp_path / "registry-empty"),
        LakeSettings(str(empty), Adapter.LOCAL),
        engine,
    )
    submission = remote.submit(TrainingRequest("fraud", "retrain:fraud:empty"))
    result = _trained_here(submission)
    assert result["error"].startswith("no chargebacks in silver yet") and result["files"] == {}
    with pytest.raises(CannotTrain, match="no chargebacks in silver yet"):
        remote.finish(_succeeded(engine, submission))


def test_finish_needs_the_runs_result_and_its_files_in_the_run(
    remote: SparkTraining, engine: FakeTrainingEngine, lake: Path
) -> None:
    submission = remote.submit(TrainingRequest("maintenance", "retrain:maintenance:lost"))
    done = _succeeded(engine, submission)
    with pytest.raises(MissingData, match=r"run-1 succeeded, but wrote no .*/result\.json"):
        remote.finish(done)

    forged = {
        "model": "maintenance",
        "run_id": "lost",
        "files": {"fraud/runs/x/model.onnx": f"{submission.staging}/a/model.onnx"},
    }
    (lake / "models" / submission.staging / "result.json").write_text(json.dumps(forged))
    with pytest.raises(PayloadError, match="names fraud/runs/x/model.onnx"):
        remote.finish(done)
    escaping = {**forged, "files": {"maintenance/runs/lost/../../x": f"{submission.staging}/a/b"}}
    (lake / "models" / submission.staging / "result.json").write_text(json.dumps(escaping))
    with pytest.raises(PayloadError, match=r"names maintenance/runs/lost/\.\./\.\./x"):
        remote.finish(done)


def test_the_runner_is_self_contained_and_knows_the_training_job() -> None:
    source = (PROJECT / "shared" / "batch" / "spark_runner.py").read_text()
    imported = {
        alias.name.partition(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        str(node.module).partition(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
    }
    assert {name for name in imported if name not in sys.stdlib_module_names} == {
        "pyspark",
        "numpy",
        "pandas",
        "onnxruntime",
    }
    assert spark_runner.TRAINING_PREFIX == batch_engine.TRAINING_PREFIX
    assert spark_runner.TRAINING_FORMAT == training_run.PAYLOAD_FORMAT
    with pytest.raises(ValueError, match="format 2, not 1"):
        spark_runner.train({"format": 2}, lambda uri: b"")


def test_the_runner_refuses_a_package_of_the_same_name_already_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a failed run's code stays
    code = _zip(training_code(), tmp_path)
    job = {"format": 1, "code_uri": str(code), "entry": training_run.ENTRY}
    with pytest.raises(ImportError, match="not the job's code: the cluster has a package"):
        spark_runner.train(job, lambda uri: Path(uri).read_bytes())  # `shared` is this one
    assert str(code) not in sys.path


# The orchestration, replayed by the SDK over recorded histories.

ORCHESTRATOR = train_challenger_orchestrator.build().get_user_function()
REQUEST = {"name": "fraud", "run_id": "retrain:fraud:drift:w", "label_maturity_hours": 30.0}
SUBMITTED = {
    "model": "fraud",
    "run_id": "retrain:fraud:drift:w",
    "staging": "fraud/training/retrain-fraud-drift-w-0123456789ab",
    "payload_uri": "abfss://lake@acct.dfs.core.windows.net/models/fraud/training/x/job.json",
    "remote": {
        "engine": "databricks",
        "run_id": "1001",
        "status": "pending",
        "message": "",
        "rows_out": None,
    },
    "poll_first_s": 5.0,
    "poll_max_s": 8.0,
    "run_timeout_s": 60.0,
}
TRAINED = {"name": "fraud", "version": 4, "metrics": {"pr_auc": 0.61}, "aliases": []}


def _state(status: str, message: str = "") -> dict[str, Any]:
    return {**SUBMITTED["remote"], "status": status, "message": message}


def _submitted() -> History:
    return History(TRAIN_CHALLENGER, REQUEST).activity(SUBMIT_TRAINING, {"submitted": SUBMITTED})


def _activities(state: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(name, given) for name, given in scheduled(state) if name != "timer"]


def test_a_local_engine_trains_in_the_model_train_activity() -> None:
    history = History(TRAIN_CHALLENGER, REQUEST).activity(SUBMIT_TRAINING, {"local": True})
    state = history.activity(TRAIN_ACTIVITY, TRAINED).replay(ORCHESTRATOR, parent="retrain:x")
    assert state["isDone"] and _activities(state) == [
        (SUBMIT_TRAINING, REQUEST),
        (TRAIN_ACTIVITY, REQUEST),
    ]
    assert state["output"] == TRAINED


def test_the_run_id_is_the_instance_id_unless_given() -> None:
    state = History(TRAIN_CHALLENGER, {"name": "maintenance"}).replay(ORCHESTRATOR)
    assert scheduled(state) == [(SUBMIT_TRAINING, {"name": "maintenance", "run_id": "i1"})]


def test_what_cannot_be_submitted_is_the_orchestrations_output() -> None:
    refused = {"name": "nope", "error": "no model named 'nope'", "permanent": True}
    history = History(TRAIN_CHALLENGER, {"name": "nope", "run_id": "r"})
    state = history.activity(SUBMIT_TRAINING, refused).replay(ORCHESTRATOR)
    assert state["isDone"] and names(state) == [SUBMIT_TRAINING]
    assert state["output"] == refused


def test_a_remote_run_is_polled_with_growing_timers_then_registered() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(TRAINING_STATE, _state("running"))
    waiting = history.replay(ORCHESTRATOR)
    assert not waiting["isDone"] and scheduled(waiting)[-1][0] == "timer"
    assert waiting["customStatus"] == {
        "model": "fraud",
        "step": "remote",
        "engine": "databricks",
        "run_id": "1001",
        "status": "running",
        "polls": 1,
    }
    history.timer(T0 + timedelta(seconds=5 + 8))  # doubled, up to poll_max_s
    history.activity(TRAINING_STATE, _state("succeeded"))
    history.activity(FINISH_TRAINING, TRAINED)

    state = history.replay(ORCHESTRATOR)

    assert state["isDone"], state
    assert _activities(state) == [
        (SUBMIT_TRAINING, REQUEST),
        (TRAINING_STATE, {"run_id": "1001"}),
        (TRAINING_STATE, {"run_id": "1001"}),
        (FINISH_TRAINING, {"submission": SUBMITTED, "final": _state("succeeded")}),
    ]
    assert state["output"] == TRAINED
    assert state["customStatus"] == {"model": "fraud", "step": "done"}


def test_a_failed_run_ends_with_its_reason() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(TRAINING_STATE, _state("failed", "TERMINATED/FAILED: ImportError: lightgbm"))
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"] and FINISH_TRAINING not in names(state)
    assert state["output"] == {
        "name": "fraud",
        "error": "the databricks run 1001 failed: TERMINATED/FAILED: ImportError: lightgbm",
        "permanent": True,
    }


def test_a_run_past_its_timeout_is_cancelled() -> None:
    history = _submitted()
    at = T0
    for seconds in (5, 8, 8, 8, 8, 8, 8, 7):  # 60 s: the last timer fires at the deadline
        at += timedelta(seconds=seconds)
        history.timer(at).activity(TRAINING_STATE, _state("running"))
    history.activity(CANCEL_TRAINING, _state("cancelled"))
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"], state
    assert names(state)[-1] == CANCEL_TRAINING
    assert state["output"] == {
        "name": "fraud",
        "error": "timed out after 60 s: the databricks run 1001 asked to cancel (cancelled)",
        "permanent": True,
    }


def test_a_cancel_event_cancels_the_remote_run() -> None:
    history = _submitted()
    history.create_timer(T0 + timedelta(seconds=5))
    history.turn(1).raised(CANCEL_EVENT)
    history.activity(CANCEL_TRAINING, _state("running"))
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"], state
    assert state["output"]["error"] == (
        "cancelled: the databricks run 1001 asked to cancel (running)"
    )


def test_a_permanent_failure_while_polling_ends_the_training() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(TRAINING_STATE, {"error": "UnknownRun: no run 1001", "permanent": True})
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"]
    assert state["output"]["error"] == "the databricks run 1001: UnknownRun: no run 1001"


def test_a_version_that_cannot_be_registered_ends_the_training_with_the_reason() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(TRAINING_STATE, _state("succeeded"))
    history.activity_failed(FINISH_TRAINING, "RegistryUnavailable: 503", attempts=4)
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"], state
    assert state["output"]["error"].startswith("the databricks run 1001 succeeded; its version: ")
    assert "RegistryUnavailable: 503" in state["output"]["error"]


# The activities, on a platform whose batch engine trains.


@pytest.fixture
def platform(
    installed: Any, lake: Path, models: Models, engine: FakeTrainingEngine, tmp_path: Path
) -> Any:
    settings = load_settings(
        {"PLATFORM_DATA_DIR": str(tmp_path / "platform"), "LAKE_URI": str(lake)}
    )
    return installed(
        dataclasses.replace(
            bootstrap(settings),
            lazy_models=Lazy(lambda: models),
            lazy_pipeline=Lazy(lambda: medallion_for(lake, engine)),
            lazy_remote_training=Lazy(
                lambda: spark_training(models, engine, settings.lake, settings.batch)
            ),
        )
    )


def test_the_activities_submit_poll_and_register_through_the_engine(
    platform: Any, engine: FakeTrainingEngine, models: Models
) -> None:
    answer = model_train_submit({"name": "maintenance", "run_id": "retrain:maintenance:act"})
    submitted = answer["submitted"]
    assert submitted["remote"]["status"] == "pending" and len(engine.trainings) == 1
    run_id = submitted["remote"]["run_id"]
    assert model_train_state({"run_id": run_id})["status"] == "pending"
    assert model_train_state({"run_id": "nope"}) == {
        "error": "UnknownRun: fake-spark has no run nope",
        "permanent": True,
    }
    _trained_here(msgspec.convert(submitted, TrainingSubmission))
    engine.finish(run_id, RunStatus.SUCCEEDED)
    final = model_train_state({"run_id": run_id})

    finished = model_train_finish({"submission": submitted, "final": final})

    version = models.registry.get_version("maintenance", 1)
    assert finished == {
        "name": "maintenance",
        "version": 1,
        "metrics": version.metrics,
        "aliases": ["champion"],
    }
    assert version.run_id == "retrain-maintenance-act"


def test_the_activities_report_what_cannot_be_trained(
    platform: Any, engine: FakeTrainingEngine
) -> None:
    assert model_train_submit({"name": "nope", "run_id": "r"}) == {
        "name": "nope",
        "error": "no model named 'nope': the models are fraud, maintenance, recommendations",
        "permanent": True,
    }
    assert engine.trainings == []
    submitted = model_train_submit({"name": "maintenance", "run_id": "retrain:m:lost"})
    engine.finish(submitted["submitted"]["remote"]["run_id"], RunStatus.SUCCEEDED)
    final = model_train_state({"run_id": submitted["submitted"]["remote"]["run_id"]})
    finished = model_train_finish({"submission": submitted["submitted"], "final": final})
    assert finished["name"] == "maintenance" and finished["permanent"] is True
    assert "succeeded, but wrote no" in finished["error"]


def test_with_the_local_engine_the_model_trains_here(installed: Any, tmp_path: Path) -> None:
    installed(bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path / "platform")})))
    assert model_train_submit({"name": "fraud", "run_id": "r"}) == {"local": True}
