"""Batch scorings submitted to Databricks and Synapse through their real SDKs, against the
loopback workspaces: the task or pipeline run carries the payload's URI (never the payload),
Databricks installs the pinned libraries, the idempotency token makes a second submit of the
same run the same run, and the runs are watched and cancelled like the SQL jobs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.batch.databricks_engine import DatabricksEngine
from shared.batch.engine import RunStatus, ScoringJob
from shared.batch.synapse_engine import IDEMPOTENCY_PARAMETER, SynapseEngine
from shared.config import DatabricksSettings, SynapseSettings
from shared.models.batch_scoring import BatchScoreRequest, BatchScoring
from shared.models.remote_scoring import SparkScoring
from shared.models.scoring_job import spark_libraries
from shared.pipeline.lake import Lake
from tests.fakes.databricks import TOKEN, FakeDatabricks
from tests.fakes.runs import wait_terminal
from tests.fakes.synapse import FakeCredential, FakeSynapse
from tests.modeldata import land_history, refresh, trained_models

pytestmark = pytest.mark.integration

PAYLOAD = "abfss://lake@acct.dfs.core.windows.net/models/fraud/batch/score-fraud-1-ab12/job.json"
JOB = ScoringJob("fraud", PAYLOAD, run_key="score:fraud:1", libraries=spark_libraries())
RUNNER = "dbfs:/platform/spark_runner.py"


def scoring_outcome(payload: Any) -> tuple[bool, str]:
    """A Databricks scoring task succeeds when it names a payload and installs its libraries."""
    task = payload["tasks"][0]
    [argument] = task["spark_python_task"]["parameters"]
    if not argument.startswith("score:") or not task.get("libraries"):
        return False, "the runner has no scoring job or no onnxruntime"
    return True, ""


@pytest.fixture
def databricks() -> Iterator[FakeDatabricks]:
    with FakeDatabricks(pending_s=0.05, running_s=0.15, outcome=scoring_outcome) as fake:
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
    submitted = engine.submit_scoring(JOB)
    final, seen = wait_terminal(engine, submitted.run_id)

    [body] = _submits(databricks)
    [task] = body["tasks"]
    assert task["task_key"] == "batch_scoring"
    assert task["existing_cluster_id"] == "0101-cluster"
    assert task["spark_python_task"] == {"python_file": RUNNER, "parameters": [f"score:{PAYLOAD}"]}
    assert task["libraries"] == [{"pypi": {"package": p}} for p in spark_libraries()]
    assert [p.split("==")[0] for p in spark_libraries()] == ["onnxruntime", "msgspec"]
    assert body["idempotency_token"] == JOB.idempotency_key()[:64]
    assert body["run_name"] == "batch scoring fraud" and body["timeout_seconds"] == 600
    # The parameters' JSON must stay under 10,000 bytes: the payload travels as a file.
    assert len(json.dumps(task["spark_python_task"]["parameters"])) < 200
    assert seen == [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    assert final.engine == "databricks"


def test_databricks_makes_a_second_submit_of_the_same_run_the_same_run(
    databricks: FakeDatabricks,
) -> None:
    engine = _databricks(databricks)
    first = engine.submit_scoring(JOB)
    assert engine.submit_scoring(JOB).run_id == first.run_id
    other = ScoringJob("fraud", PAYLOAD.replace("-1-", "-2-"), run_key="score:fraud:2")
    assert engine.submit_scoring(other).run_id != first.run_id


def test_a_databricks_scoring_is_cancelled_like_a_sql_job() -> None:
    with FakeDatabricks(running_s=None, outcome=scoring_outcome) as fake:
        engine = _databricks(fake)
        run_id = engine.submit_scoring(JOB).run_id
        engine.cancel(run_id)
        final, _ = wait_terminal(engine, run_id)
    assert final.status is RunStatus.CANCELLED


def test_the_app_submits_the_payload_it_wrote(
    databricks: FakeDatabricks, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lake = tmp_path_factory.mktemp("engines") / "lake"
    now = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
    land_history(lake, days=2, rate=0.1, seed=5, label_delay_scale=0.2, fraud_rate=0.08, end=now)
    refresh(lake)
    models = trained_models(lake, lake.parent / "registry", ("maintenance",))
    scoring = SparkScoring(BatchScoring(Lake(str(lake)), models), _databricks(databricks))

    submission = scoring.submit(BatchScoreRequest("maintenance", run_id="score:maintenance:x"))
    final, _ = wait_terminal(scoring, submission.remote.run_id)

    [body] = _submits(databricks)
    [argument] = body["tasks"][0]["spark_python_task"]["parameters"]
    payload = json.loads(Path(argument.removeprefix("score:")).read_text())
    assert argument == f"score:{submission.payload_uri}"
    assert payload["run_id"] == "score:maintenance:x" and payload["model"] == "maintenance"
    assert final.status is RunStatus.SUCCEEDED


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


def test_synapse_runs_the_pipeline_with_the_scoring_argument(synapse: FakeSynapse) -> None:
    engine = _synapse(synapse)
    submitted = engine.submit_scoring(JOB)
    final, seen = wait_terminal(engine, submitted.run_id)

    [create] = [r for r in synapse.server.requests if r.path.endswith("/createRun")]
    assert create.path == "/pipelines/platform_gold_sql/createRun"
    assert create.body == {
        "model": "fraud",
        "job": f"score:{PAYLOAD}",
        IDEMPOTENCY_PARAMETER: JOB.idempotency_key(),
    }
    assert seen == [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    assert final.engine == "synapse"


def test_synapse_makes_a_second_submit_of_the_same_run_the_same_run(synapse: FakeSynapse) -> None:
    engine = _synapse(synapse)
    first = engine.submit_scoring(JOB)
    assert engine.submit_scoring(JOB).run_id == first.run_id
    assert len(synapse.created_runs()) == 1
