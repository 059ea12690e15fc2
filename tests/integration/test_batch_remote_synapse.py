"""SynapseEngine through the real azure-synapse-artifacts SDK against a loopback workspace (TLS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.batch.engine import BatchError, RunStatus, SqlJob, UnknownRun
from shared.batch.sql import decode_job
from shared.batch.synapse_engine import SynapseEngine
from shared.config import SynapseSettings
from tests.fakes.runs import wait_terminal
from tests.fakes.synapse import API_VERSION, FakeCredential, FakeSynapse

pytestmark = pytest.mark.integration

JOB = SqlJob(
    "merchant_daily",
    "SELECT merchant_id, count(*) AS n FROM silver.payment_transaction GROUP BY merchant_id",
    {
        "silver.payment_transaction": "abfss://lake@acct.dfs.core.windows.net/silver/payment_transaction"
    },
    "abfss://lake@acct.dfs.core.windows.net/gold/merchant_daily",
)


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[FakeSynapse]:
    with FakeSynapse(tmp_path / "tls", pending_s=0.05, running_s=0.15) as fake:
        yield fake


def _engine(
    fake: FakeSynapse, credential: FakeCredential | None = None, pipeline: str = "platform_gold_sql"
) -> SynapseEngine:
    return SynapseEngine.from_settings(
        SynapseSettings(fake.url, pipeline),
        credential or FakeCredential(),
        connection_verify=str(fake.cert_path),
        retry_total=0,
    )


def test_a_run_goes_queued_in_progress_succeeded(workspace: FakeSynapse) -> None:
    credential = FakeCredential()
    engine = _engine(workspace, credential)
    submitted = engine.submit(JOB)
    final, seen = wait_terminal(engine, submitted.run_id)

    assert seen == [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    assert credential.scopes[0] == "https://dev.azuresynapse.net/.default"
    assert all(r.query["api-version"] == API_VERSION for r in workspace.server.requests)


def test_the_pipeline_gets_the_model_and_its_spark_sql(workspace: FakeSynapse) -> None:
    _engine(workspace).submit(JOB)

    [create] = [r for r in workspace.server.requests if r.path.endswith("/createRun")]
    assert create.path == "/pipelines/platform_gold_sql/createRun"
    assert create.body["model"] == "merchant_daily"
    model, [statement] = decode_job(create.body["job"])
    assert model == "merchant_daily"
    assert statement.startswith(f"CREATE OR REPLACE TABLE delta.`{JOB.output}` USING DELTA AS")


def test_a_failing_run_reports_failed_with_the_message(workspace: FakeSynapse) -> None:
    workspace.fail_models.add("merchant_daily")
    engine = _engine(workspace)
    final, _ = wait_terminal(engine, engine.submit(JOB).run_id)
    assert final.status is RunStatus.FAILED
    assert "simulated failure" in final.message


def test_a_cancelled_run_ends_cancelled(tmp_path: Path) -> None:
    with FakeSynapse(tmp_path / "tls", running_s=None) as fake:
        engine = _engine(fake)
        run_id = engine.submit(JOB).run_id
        engine.cancel(run_id)
        final, seen = wait_terminal(engine, run_id)
    assert final.status is RunStatus.CANCELLED
    assert seen[-1] is RunStatus.CANCELLED


def test_an_unknown_run_is_reported(workspace: FakeSynapse) -> None:
    with pytest.raises(UnknownRun):
        _engine(workspace).state("00000000-0000-0000-0000-000000000000")


def test_a_missing_pipeline_is_a_permanent_error(workspace: FakeSynapse) -> None:
    with pytest.raises(BatchError, match="no_such_pipeline") as raised:
        _engine(workspace, pipeline="no_such_pipeline").submit(JOB)
    assert not isinstance(raised.value, UnknownRun)
    assert raised.value.transient is False


def test_a_rejected_token_is_a_permanent_error(workspace: FakeSynapse) -> None:
    with pytest.raises(BatchError) as raised:
        _engine(workspace, FakeCredential("expired")).submit(JOB)
    assert raised.value.transient is False


def test_an_unreachable_workspace_is_a_transient_error(tmp_path: Path) -> None:
    with FakeSynapse(tmp_path / "tls") as fake:
        engine = _engine(fake)
        run_id = engine.submit(JOB).run_id
    with pytest.raises(BatchError) as raised:
        engine.state(run_id)
    assert raised.value.transient is True
