"""SynapseEngine through the real azure-synapse-artifacts SDK against a loopback workspace (TLS)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.synapse.artifacts import ArtifactsClient

from shared.batch.engine import BatchError, RunStatus, SqlJob, UnknownRun
from shared.batch.sql import decode_job
from shared.batch.synapse_engine import IDEMPOTENCY_PARAMETER, LOOKBACK, SynapseEngine
from shared.config import SynapseSettings
from tests.fakes.runs import wait_terminal
from tests.fakes.synapse import API_VERSION, TOKEN, FakeCredential, FakeSynapse

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


def _keyed(run_key: str) -> SqlJob:
    return SqlJob(JOB.model, JOB.sql, JOB.inputs, JOB.output, run_key=run_key)


def _creates(fake: FakeSynapse) -> list[Any]:
    return [r for r in fake.server.requests if r.path.endswith("/createRun")]


def test_a_retried_submit_reuses_the_run_with_its_key(workspace: FakeSynapse) -> None:
    engine = _engine(workspace)
    first = engine.submit(_keyed("instance-1"))
    again = _engine(workspace).submit(_keyed("instance-1"))  # as another worker retrying it

    assert again.run_id == first.run_id
    [create] = _creates(workspace)
    key = create.body[IDEMPOTENCY_PARAMETER]
    assert len(key) == 64
    queries = [r for r in workspace.server.requests if r.path == "/queryPipelineRuns"]
    assert len(queries) == 2
    assert queries[0].body["filters"] == [
        {"operand": "PipelineName", "operator": "Equals", "values": ["platform_gold_sql"]}
    ]
    after = dt.datetime.fromisoformat(queries[0].body["lastUpdatedAfter"])
    before = dt.datetime.fromisoformat(queries[0].body["lastUpdatedBefore"])
    assert before - after >= LOOKBACK


def test_another_run_key_starts_another_run(workspace: FakeSynapse) -> None:
    engine = _engine(workspace)
    assert engine.submit(_keyed("instance-1")).run_id != engine.submit(_keyed("instance-2")).run_id
    assert len(_creates(workspace)) == 2


def test_a_reused_run_reports_where_it_is(workspace: FakeSynapse) -> None:
    engine = _engine(workspace)
    first = engine.submit(_keyed("instance-1"))
    wait_terminal(engine, first.run_id)

    again = engine.submit(_keyed("instance-1"))

    assert (again.run_id, again.status) == (first.run_id, RunStatus.SUCCEEDED)


def test_the_lookup_follows_continuation_tokens(tmp_path: Path) -> None:
    with FakeSynapse(tmp_path / "tls", page_size=2) as fake:
        engine = _engine(fake)
        oldest = engine.submit(_keyed("instance-0"))
        for n in range(1, 6):
            engine.submit(_keyed(f"instance-{n}"))
        before = len(fake.server.requests)

        again = engine.submit(_keyed("instance-0"))

        pages = [r for r in fake.server.requests[before:] if r.path == "/queryPipelineRuns"]
    assert again.run_id == oldest.run_id
    assert len(pages) == 3  # newest first: the oldest run is on the last of three pages
    assert "continuationToken" not in pages[0].body
    assert pages[1].body["continuationToken"] != pages[2].body["continuationToken"]
    assert len(_creates(fake)) == 6


def test_a_run_older_than_the_lookback_is_not_reused(workspace: FakeSynapse) -> None:
    first = _engine(workspace).submit(_keyed("instance-1"))
    later = dt.datetime.now(dt.UTC) + LOOKBACK + dt.timedelta(hours=1)
    client = ArtifactsClient(
        FakeCredential(), workspace.url, connection_verify=str(workspace.cert_path), retry_total=0
    )
    engine = SynapseEngine(client, pipeline="platform_gold_sql", clock=lambda: later)

    assert engine.submit(_keyed("instance-1")).run_id != first.run_id


def test_runs_of_other_pipelines_are_not_reused(tmp_path: Path) -> None:
    pipelines = frozenset({"platform_gold_sql", "other_gold_sql"})
    with FakeSynapse(tmp_path / "tls", pipelines=pipelines) as fake:
        other = _engine(fake, pipeline="other_gold_sql").submit(_keyed("instance-1"))
        mine = _engine(fake).submit(_keyed("instance-1"))
    assert mine.run_id != other.run_id


def test_a_failed_lookup_starts_no_run(workspace: FakeSynapse) -> None:
    workspace.query_failures = 1
    engine = _engine(workspace)
    with pytest.raises(BatchError) as raised:
        engine.submit(_keyed("instance-1"))
    assert raised.value.transient is True
    assert _creates(workspace) == []

    submitted = engine.submit(_keyed("instance-1"))  # the activity's retry

    assert [r.run_id for r in workspace.created_runs()] == [submitted.run_id]


def test_the_run_query_speaks_the_documented_body(workspace: FakeSynapse) -> None:
    engine = _engine(workspace)
    done = engine.submit(_keyed("instance-1"))
    wait_terminal(engine, done.run_id)
    engine.submit(_keyed("instance-2"))
    url = f"{workspace.url}/queryPipelineRuns?api-version={API_VERSION}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    now = dt.datetime.now(dt.UTC)
    window = {
        "lastUpdatedAfter": (now - dt.timedelta(minutes=5)).isoformat(),
        "lastUpdatedBefore": (now + dt.timedelta(minutes=5)).isoformat(),
    }

    def query(body: dict[str, Any]) -> requests.Response:
        return requests.post(
            url, json=body, headers=headers, verify=str(workspace.cert_path), timeout=5
        )

    status = {"operand": "Status", "operator": "In", "values": ["Succeeded"]}
    succeeded = query({**window, "filters": [status]}).json()["value"]
    assert [r["runId"] for r in succeeded] == [done.run_id]
    assert succeeded[0]["parameters"][IDEMPOTENCY_PARAMETER]
    assert query({"filters": []}).status_code == 400  # the window is required
    late = {
        "lastUpdatedAfter": (now + dt.timedelta(minutes=1)).isoformat(),
        "lastUpdatedBefore": (now + dt.timedelta(minutes=5)).isoformat(),
    }
    assert query(late).json()["value"] == []
    bad = {"operand": "Parameters", "operator": "Equals", "values": ["x"]}
    assert query({**window, "filters": [bad]}).status_code == 400
