"""DatabricksEngine through the real databricks-sdk against a loopback Jobs API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config

from shared.batch.databricks_engine import DatabricksEngine
from shared.batch.engine import BatchError, RunStatus, SqlJob, UnknownRun
from shared.batch.sql import decode_job, encode_job
from shared.config import DatabricksSettings
from shared.pipeline.gold import GoldRunner
from shared.pipeline.lake import Lake
from tests.fakes.databricks import TOKEN, FakeDatabricks
from tests.fakes.runs import wait_terminal
from tests.lakedata import state_at

pytestmark = pytest.mark.integration

JOB = SqlJob(
    "account_daily_spend",
    "SELECT account_id, sum(amount) AS total FROM silver.payment_transaction GROUP BY account_id",
    {
        "silver.payment_transaction": "abfss://lake@acct.dfs.core.windows.net/silver/payment_transaction"
    },
    "abfss://lake@acct.dfs.core.windows.net/gold/account_daily_spend",
    run_key="instance-1",
)


@pytest.fixture
def workspace() -> Iterator[FakeDatabricks]:
    with FakeDatabricks(pending_s=0.05, running_s=0.15) as fake:
        yield fake


def _engine(fake: FakeDatabricks, token: str = TOKEN) -> DatabricksEngine:
    settings = DatabricksSettings(fake.url, "0101-cluster", "dbfs:/platform/spark_runner.py", token)
    return DatabricksEngine.from_settings(settings, run_timeout_s=600)


def test_a_run_goes_pending_running_succeeded(workspace: FakeDatabricks) -> None:
    engine = _engine(workspace)
    submitted = engine.submit(JOB)
    final, seen = wait_terminal(engine, submitted.run_id)

    assert submitted.status is RunStatus.PENDING
    assert seen == [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    assert final.engine == "databricks"


def test_the_submitted_task_runs_the_transpiled_spark_sql(workspace: FakeDatabricks) -> None:
    _engine(workspace).submit(JOB)

    [submit] = [r for r in workspace.server.requests if r.path.endswith("/runs/submit")]
    [task] = submit.body["tasks"]
    assert task["existing_cluster_id"] == "0101-cluster"
    assert task["spark_python_task"]["python_file"] == "dbfs:/platform/spark_runner.py"
    assert submit.body["timeout_seconds"] == 600
    model, [statement] = decode_job(task["spark_python_task"]["parameters"][0])
    assert model == "account_daily_spend"
    assert statement.startswith(f"CREATE OR REPLACE TABLE delta.`{JOB.output}` USING DELTA AS")
    assert "delta.`abfss://lake@acct.dfs.core.windows.net/silver/payment_transaction`" in statement


def test_submitting_the_same_logical_run_twice_is_one_run(workspace: FakeDatabricks) -> None:
    engine = _engine(workspace)
    assert engine.submit(JOB).run_id == engine.submit(JOB).run_id
    other = SqlJob(JOB.model, JOB.sql, JOB.inputs, JOB.output, run_key="instance-2")
    assert engine.submit(other).run_id != engine.submit(JOB).run_id


def test_a_failing_run_reports_failed_with_the_message(workspace: FakeDatabricks) -> None:
    workspace.fail_models.add("account_daily_spend")
    engine = _engine(workspace)
    final, _ = wait_terminal(engine, engine.submit(JOB).run_id)

    assert final.status is RunStatus.FAILED
    assert "TERMINATED/FAILED" in final.message
    assert "simulated failure" in final.message


def test_a_cancelled_run_ends_cancelled() -> None:
    with FakeDatabricks(running_s=None) as fake:
        engine = _engine(fake)
        run_id = engine.submit(JOB).run_id
        after_cancel = engine.cancel(run_id)
        final, _ = wait_terminal(engine, run_id)

    assert after_cancel.status in (RunStatus.RUNNING, RunStatus.PENDING, RunStatus.CANCELLED)
    assert final.status is RunStatus.CANCELLED


def test_an_unknown_run_is_reported(workspace: FakeDatabricks) -> None:
    with pytest.raises(UnknownRun):
        _engine(workspace).state("424242")
    with pytest.raises(UnknownRun):
        _engine(workspace).state("not-a-number")


def test_a_bad_token_is_a_permanent_error(workspace: FakeDatabricks) -> None:
    with pytest.raises(BatchError) as raised:
        _engine(workspace, token="dapi-wrong").submit(JOB)
    assert raised.value.transient is False


def test_an_unreachable_workspace_is_a_transient_error() -> None:
    with FakeDatabricks() as fake:
        run_id = _engine(fake).submit(JOB).run_id
    config = Config(host=fake.url, token=TOKEN, retry_timeout_seconds=1, http_timeout_seconds=1)
    client = WorkspaceClient(config=config)
    dead = DatabricksEngine(client, cluster_id="c", runner_path="r")
    with pytest.raises(BatchError) as raised:
        dead.state(run_id)
    assert raised.value.transient is True


def test_the_same_state_machine_answers_jobs_api_2_1(workspace: FakeDatabricks) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body: dict[str, Any] = {
        "run_name": "curl",
        "tasks": [
            {
                "task_key": "t",
                "existing_cluster_id": "c",
                "spark_python_task": {
                    "python_file": "r.py",
                    "parameters": [encode_job("m", ["SELECT 1"])],
                },
            }
        ],
    }
    run = requests.post(
        f"{workspace.url}/api/2.1/jobs/runs/submit", json=body, headers=headers, timeout=5
    ).json()
    state = requests.get(
        f"{workspace.url}/api/2.1/jobs/runs/get",
        params={"run_id": run["run_id"]},
        headers=headers,
        timeout=5,
    ).json()
    assert state["state"]["life_cycle_state"] in ("PENDING", "RUNNING")
    cancelled = requests.post(
        f"{workspace.url}/api/2.1/jobs/runs/cancel",
        json={"run_id": run["run_id"]},
        headers=headers,
        timeout=5,
    )
    assert cancelled.status_code == 200


def test_gold_runner_submits_and_polls_a_model_on_databricks(
    workspace: FakeDatabricks, tmp_path: Path
) -> None:
    runner = GoldRunner(
        Lake(str(tmp_path / "lake")),
        state_at(tmp_path / "s.sqlite"),
        _engine(workspace),
    )
    submission = runner.submit("item_pairs", "instance-9")
    assert submission.run is not None
    final, _ = wait_terminal(runner, submission.run.run_id)
    runner.record_success(submission, final)

    assert final.status is RunStatus.SUCCEEDED
    assert (
        runner.submit("item_pairs", "instance-10").run is not None
    )  # gold/item_pairs is still not local
    [submit, *_] = [r for r in workspace.server.requests if r.path.endswith("/runs/submit")]
    _, [statement] = decode_job(submit.body["tasks"][0]["spark_python_task"]["parameters"][0])
    assert "WHERE 1 = 0" in statement  # silver.app_interaction does not exist yet: read as empty
