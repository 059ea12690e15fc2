"""Trainings submitted to Databricks and Synapse through their real SDKs, against the loopback
workspaces: the task or pipeline run carries the payload's URI (never the payload), Databricks
installs the pinned libraries, and the idempotency token makes a second submit of the same run
the same run. Then the `train_challenger` orchestration end to end on the loopback Databricks:
the SDK replays it over its history while its activities run for real (the timers fire at once),
the "cluster" runs the runner on a driver without this package, and the app registers the
version the run trained."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.history import HistoryEventType

from orchestrations.model_training_remote import (
    CANCEL_TRAINING,
    FINISH_TRAINING,
    SUBMIT_TRAINING,
    TRAIN_CHALLENGER,
    TRAINING_STATE,
    model_train_cancel,
    model_train_finish,
    model_train_state,
    model_train_submit,
    train_challenger_orchestrator,
)
from shared.batch.databricks_engine import DatabricksEngine
from shared.batch.engine import RunStatus, TrainingJob
from shared.batch.synapse_engine import IDEMPOTENCY_PARAMETER, SynapseEngine
from shared.bootstrap import Lazy, bootstrap
from shared.config import DatabricksSettings, SynapseSettings, load_settings
from shared.models.remote_training import spark_training
from shared.models.service import Models
from shared.models.training_code import training_libraries
from tests.fakes.databricks import TOKEN, FakeDatabricks
from tests.fakes.runs import wait_terminal
from tests.fakes.synapse import FakeCredential, FakeSynapse
from tests.lakedata import medallion_for
from tests.modeldata import land_history, refresh
from tests.orchestrator_replay import History, scheduled
from tests.training_driver import DriverFailed, models_beside, train_on_driver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type"),
]

PAYLOAD = "abfss://lake@acct.dfs.core.windows.net/models/fraud/training/r-1-ab12/job.json"
JOB = TrainingJob("fraud", PAYLOAD, run_key="retrain:fraud:1", libraries=training_libraries())
RUNNER = "dbfs:/platform/spark_runner.py"
NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)


def training_outcome(payload: Any) -> tuple[bool, str]:
    """A Databricks training task succeeds when it names a payload and installs its libraries."""
    task = payload["tasks"][0]
    [argument] = task["spark_python_task"]["parameters"]
    if not argument.startswith("train:") or not task.get("libraries"):
        return False, "the runner has no training job or no lightgbm"
    return True, ""


@pytest.fixture
def databricks() -> Iterator[FakeDatabricks]:
    with FakeDatabricks(pending_s=0.05, running_s=0.15, outcome=training_outcome) as fake:
        yield fake


def _databricks(fake: FakeDatabricks) -> DatabricksEngine:
    settings = DatabricksSettings(fake.url, "0101-cluster", RUNNER, TOKEN)
    return DatabricksEngine.from_settings(settings, run_timeout_s=600)


def _submits(fake: FakeDatabricks) -> list[dict[str, Any]]:
    return [r.body for r in fake.server.requests if r.path.endswith("/runs/submit")]


def test_databricks_runs_the_runner_on_the_payload_with_the_pinned_libraries(
    databricks: FakeDatabricks,
) -> None:
    engine = _databricks(databricks)
    submitted = engine.submit_training(JOB)
    final, seen = wait_terminal(engine, submitted.run_id)

    [body] = _submits(databricks)
    [task] = body["tasks"]
    assert task["task_key"] == "model_training"
    assert task["existing_cluster_id"] == "0101-cluster"
    assert task["spark_python_task"] == {"python_file": RUNNER, "parameters": [f"train:{PAYLOAD}"]}
    assert task["libraries"] == [{"pypi": {"package": p}} for p in training_libraries()]
    assert body["idempotency_token"] == JOB.idempotency_key()[:64]
    assert body["run_name"] == "training fraud" and body["timeout_seconds"] == 600
    assert seen == [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    assert final.engine == "databricks"


def test_databricks_makes_a_second_submit_of_the_same_run_the_same_run(
    databricks: FakeDatabricks,
) -> None:
    engine = _databricks(databricks)
    first = engine.submit_training(JOB)
    assert engine.submit_training(JOB).run_id == first.run_id
    other = TrainingJob("fraud", PAYLOAD.replace("-1-", "-2-"), run_key="retrain:fraud:2")
    assert engine.submit_training(other).run_id != first.run_id


@pytest.fixture
def synapse(tmp_path: Path) -> Iterator[FakeSynapse]:
    with FakeSynapse(tmp_path / "tls", pending_s=0.05, running_s=0.15) as fake:
        yield fake


def _synapse(fake: FakeSynapse) -> SynapseEngine:
    return SynapseEngine.from_settings(
        SynapseSettings(fake.url, "platform_gold_sql"),
        FakeCredential(),
        connection_verify=str(fake.cert_path),
        retry_total=0,
    )


def test_synapse_runs_the_pipeline_with_the_training_argument_once(synapse: FakeSynapse) -> None:
    engine = _synapse(synapse)
    submitted = engine.submit_training(JOB)
    final, seen = wait_terminal(engine, submitted.run_id)

    [create] = [r for r in synapse.server.requests if r.path.endswith("/createRun")]
    assert create.path == "/pipelines/platform_gold_sql/createRun"
    assert create.body == {
        "model": "fraud",
        "job": f"train:{PAYLOAD}",
        IDEMPOTENCY_PARAMETER: JOB.idempotency_key(),
    }
    assert seen == [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    assert engine.submit_training(JOB).run_id == submitted.run_id
    assert len(synapse.created_runs()) == 1


# The orchestration end to end on the loopback Databricks.

ORCHESTRATOR = train_challenger_orchestrator.build().get_user_function()
ACTIVITIES: dict[str, Callable[[Any], Any]] = {
    SUBMIT_TRAINING: model_train_submit,
    TRAINING_STATE: model_train_state,
    CANCEL_TRAINING: model_train_cancel,
    FINISH_TRAINING: model_train_finish,
}
_TASKS = {int(HistoryEventType.TASK_SCHEDULED), int(HistoryEventType.TIMER_CREATED)}


def _orchestrate(history: History, turns: int = 40) -> dict[str, Any]:
    """Replay the orchestrator and carry out what it schedules next, until it is done: each
    activity for real (its input and answer through JSON, as the host carries them), each timer
    fired at its time after a short real pause, for the remote run to move on."""
    for _ in range(turns):
        state = history.replay(ORCHESTRATOR)
        if state["isDone"]:
            return state
        done = sum(1 for event in history.events if event["EventType"] in _TASKS)
        name, given = scheduled(state)[done]
        if name == "timer":
            time.sleep(0.05)
            history.timer(dt.datetime.fromisoformat(given))
        else:
            history.activity(name, json.loads(json.dumps(ACTIVITIES[name](given))))
    raise AssertionError(f"not done after {turns} turns: {state}")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("training-engines") / "lake"
    land_history(root, days=2, rate=0.1, seed=5, label_delay_scale=0.2, fraud_rate=0.08, end=NOW)
    refresh(root)
    return root


def _cluster(folder: Path) -> Callable[[Any], tuple[bool, str]]:
    """What the loopback workspace's cluster does with a submitted run: the runner on a driver
    without this package, its failure the run's."""

    def run(payload: Any) -> tuple[bool, str]:
        [argument] = payload["tasks"][0]["spark_python_task"]["parameters"]
        try:
            train_on_driver(argument.removeprefix("train:"), folder)
        except DriverFailed as error:
            return False, str(error)[-500:]
        return True, ""

    return run


def _platform(installed: Any, lake: Path, models: Models, fake: FakeDatabricks, data: Path) -> Any:
    settings = load_settings({"PLATFORM_DATA_DIR": str(data), "LAKE_URI": str(lake)})
    pipeline = Lazy(lambda: medallion_for(lake, _databricks(fake)))
    return installed(
        dataclasses.replace(
            bootstrap(settings),
            lazy_models=Lazy(lambda: models),
            lazy_pipeline=pipeline,
            lazy_remote_training=Lazy(
                lambda: spark_training(models, pipeline.get().engine, settings.lake, settings.batch)
            ),
        )
    )


def test_the_orchestration_trains_on_databricks_and_registers_the_version(
    installed: Any, lake: Path, tmp_path: Path
) -> None:
    models = models_beside(lake, tmp_path / "registry")
    with FakeDatabricks(pending_s=0.05, running_s=0.1, outcome=_cluster(tmp_path)) as fake:
        _platform(installed, lake, models, fake, tmp_path / "platform")
        request = {"name": "maintenance", "run_id": "retrain:maintenance:drift:w9"}
        state = _orchestrate(History(TRAIN_CHALLENGER, request))

        [body] = _submits(fake)
    version = models.registry.get_version("maintenance", 1)
    assert state["output"] == {
        "name": "maintenance",
        "version": 1,
        "metrics": version.metrics,
        "aliases": ["champion"],
    }
    assert state["customStatus"] == {"model": "maintenance", "step": "done"}
    work = [name for name, _ in scheduled(state)]
    assert work[0] == SUBMIT_TRAINING and work[-1] == FINISH_TRAINING
    assert TRAINING_STATE in work and "timer" in work
    [argument] = body["tasks"][0]["spark_python_task"]["parameters"]
    assert argument.startswith(f"train:{lake}/models/maintenance/training/retrain-maintenance")
    folder = "maintenance/runs/retrain-maintenance-drift-w9"
    assert (version.run_id, version.source) == (
        "retrain-maintenance-drift-w9",
        models.artifacts.uri(folder),
    )
    assert models.onnx_file("maintenance", 1) == models.artifacts.get(f"{folder}/model.onnx")


def test_a_run_the_cluster_fails_ends_the_orchestration_with_its_reason(
    installed: Any, lake: Path, tmp_path: Path
) -> None:
    models = models_beside(lake, tmp_path / "registry")

    def broken(payload: Any) -> tuple[bool, str]:
        return False, "ModuleNotFoundError: No module named 'lightgbm'"

    with FakeDatabricks(pending_s=0.05, running_s=0.1, outcome=broken) as fake:
        _platform(installed, lake, models, fake, tmp_path / "platform")
        request = {"name": "maintenance", "run_id": "retrain:maintenance:drift:w10"}
        state = _orchestrate(History(TRAIN_CHALLENGER, request))

    assert state["output"] == {
        "name": "maintenance",
        "error": "the databricks run 1001 failed: TERMINATED/FAILED: "
        "ModuleNotFoundError: No module named 'lightgbm'",
        "permanent": True,
    }
    assert FINISH_TRAINING not in [name for name, _ in scheduled(state)]
