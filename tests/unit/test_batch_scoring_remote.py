"""Batch inference through the batch engine: the job a Spark cluster gets (its payload, written
once; the app's own feature code; pinned libraries), its figures read back from the output's
commit, and the orchestration that submits, polls, cancels and reports it."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from orchestrations.medallion import CANCEL_EVENT
from orchestrations.model_scoring import (
    BATCH_SCORE,
    BATCH_SCORE_ACTIVITY,
    CANCEL_SCORING,
    FINISH_SCORING,
    SCORING_STATE,
    batch_score_orchestrator,
    model_batch_score,
    model_batch_score_finish,
    model_batch_score_state,
)
from shared.batch import engine as batch_engine
from shared.batch import spark_runner
from shared.batch.duckdb_engine import DuckDBEngine
from shared.batch.engine import RunState, RunStatus, ScoringEngine
from shared.batch.sql import encode_job
from shared.bootstrap import Lazy, bootstrap
from shared.config import BatchSettings, load_settings
from shared.features.base import FeatureSet
from shared.features.offline import point_in_time
from shared.features.payments import PaymentFeatures
from shared.features.telemetry import TelemetryFeatures
from shared.models import fraud, maintenance, scoring_job
from shared.models.batch_scoring import BadSource, BatchScoreRequest, BatchScoring, output_schema
from shared.models.datasets import MissingData, Reads, bronze_rows
from shared.models.registry import ModelVersionNotFound
from shared.models.remote_scoring import (
    FinishScoring,
    ScoringSubmission,
    SparkScoring,
    spark_scoring,
)
from shared.models.scoring_job import FeatureCodeError, feature_code, spark_libraries
from shared.models.service import Models
from shared.pipeline.lake import Lake
from tests.fakes.scoring import FakeScoringEngine
from tests.lakedata import medallion_for
from tests.modeldata import land_history, refresh, trained_models
from tests.orchestrator_replay import T0, History, names, scheduled

pytestmark = [
    pytest.mark.unit,
    # The SDK warns once when it decodes a result the orchestrator gave no type for.
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type"),
]
NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remote") / "lake"
    land_history(root, days=2, rate=0.1, seed=5, label_delay_scale=0.2, fraud_rate=0.08, end=NOW)
    refresh(root)
    return root


@pytest.fixture(scope="module")
def models(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    return trained_models(lake, tmp_path_factory.mktemp("registry"), ("fraud", "maintenance"))


@pytest.fixture
def engine() -> FakeScoringEngine:
    return FakeScoringEngine()


@pytest.fixture
def remote(lake: Path, models: Models, engine: FakeScoringEngine) -> SparkScoring:
    return SparkScoring(BatchScoring(Lake(str(lake)), models), engine, clock=lambda: NOW)


def _payload(models: Models, uri: str) -> dict[str, Any]:
    root = Path(models.artifacts.uri(""))
    loaded: dict[str, Any] = json.loads(models.artifacts.get(str(Path(uri).relative_to(root))))
    return loaded


# The job and its payload.


def test_the_job_carries_its_payload_uri_and_the_payload_what_to_score(
    remote: SparkScoring, models: Models, engine: FakeScoringEngine, lake: Path
) -> None:
    submission = remote.submit(BatchScoreRequest("fraud", run_id="score:fraud:2026-12-07T12"))
    [job] = engine.jobs
    payload = _payload(models, submission.payload_uri)
    card = json.loads(models.artifacts.get("fraud/runs/run-fraud/card.json"))

    assert job.argument == f"score:{submission.payload_uri}"
    assert re.fullmatch(
        r".*/fraud/batch/score-fraud-2026-12-07T12-[0-9a-f]{12}/job\.json", job.payload_uri
    )
    assert job.run_key == "score:fraud:2026-12-07T12" and job.libraries == spark_libraries()
    assert submission.remote == RunState("fake-spark", "run-1", RunStatus.PENDING)
    silver = DeltaTable(str(lake / "silver" / "payment_transaction"))
    assert payload == {
        "format": 1,
        "model": "fraud",
        "version": 1,
        "threshold": card["threshold"],
        "features": card["features"],
        "onnx_uri": models.artifacts.uri("fraud/runs/run-fraud/model.onnx"),
        "feature_set": feature_code(fraud.FEATURES),
        "entity": "account_id",
        "columns": list(fraud.COLUMNS),
        "source": "silver.payment_transaction",
        "source_uri": f"{lake}/silver/payment_transaction",
        "source_version": silver.version(),
        "output_uri": f"{lake}/gold/fraud_scores",
        "run_id": "score:fraud:2026-12-07T12",
        "scored_at_us": int(NOW.timestamp()) * 1_000_000,
    }
    assert (submission.version, submission.source_version) == (1, silver.version())
    assert submission.output == "gold.fraud_scores"


def test_a_retried_submit_reuses_the_payload_and_the_run(
    remote: SparkScoring, models: Models, engine: FakeScoringEngine
) -> None:
    first = remote.submit(BatchScoreRequest("maintenance", run_id="score:maintenance:1"))
    later = dataclasses.replace(remote, clock=lambda: NOW + timedelta(hours=1))
    again = later.submit(BatchScoreRequest("maintenance", run_id="score:maintenance:1"))
    other = remote.submit(BatchScoreRequest("maintenance", run_id="score:maintenance:2"))

    assert again.payload_uri == first.payload_uri and again.remote.run_id == first.remote.run_id
    assert _payload(models, again.payload_uri)["scored_at_us"] == int(NOW.timestamp()) * 10**6
    assert len({job.idempotency_key() for job in engine.jobs}) == 2
    assert other.remote.run_id != first.remote.run_id


def test_the_libraries_are_pinned_to_requirements_txt() -> None:
    pins = dict(
        re.findall(r"^([a-z0-9_-]+)==([^ \\\n]+)", (PROJECT / "requirements.txt").read_text(), re.M)
    )
    assert spark_libraries() == (
        f"onnxruntime=={pins['onnxruntime']}",
        f"msgspec=={pins['msgspec']}",
    )


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (BatchScoreRequest("recommendations"), BadSource, "is not scored in batch"),
        (BatchScoreRequest("fraud", source="gold.x'; DROP"), BadSource, "<silver|gold>"),
        (BatchScoreRequest("fraud", source="gold.nothing_here"), MissingData, "no table"),
        (BatchScoreRequest("fraud", source="silver.iot_telemetry"), BadSource, "account_id"),
        (BatchScoreRequest("maintenance", version=9), ModelVersionNotFound, "9"),
    ],
)
def test_what_cannot_be_scored_is_refused_before_anything_is_submitted(
    remote: SparkScoring,
    engine: FakeScoringEngine,
    request_: BatchScoreRequest,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        remote.submit(request_)
    assert engine.jobs == []


def test_a_nested_column_is_refused(remote: SparkScoring, lake: Path) -> None:
    silver = DeltaTable(str(lake / "silver" / "iot_telemetry")).to_pyarrow_table().slice(0, 10)
    nested = silver.set_column(
        silver.schema.get_field_index("rpm"),
        "rpm",
        pa.array([[1.0]] * 10, pa.list_(pa.float64())),
    )
    write_deltalake(str(lake / "gold" / "nested_telemetry"), nested, mode="overwrite")
    with pytest.raises(BadSource, match="nested_telemetry.rpm is list<"):
        remote.submit(BatchScoreRequest("maintenance", source="gold.nested_telemetry"))


def test_the_engine_decides_where_scoring_runs(remote: SparkScoring) -> None:
    batch = BatchSettings(poll_first_s=2.0, poll_max_s=8.0, run_timeout_s=90.0)
    assert spark_scoring(remote.local, DuckDBEngine(), batch) is None
    found = spark_scoring(remote.local, FakeScoringEngine(), batch)
    assert found is not None and (found.polling.first_s, found.polling.timeout_s) == (2.0, 90.0)
    assert isinstance(FakeScoringEngine(), ScoringEngine)


# The feature code the cluster runs.


@pytest.mark.parametrize(
    ("feature_set", "columns"),
    [(PaymentFeatures(), fraud.COLUMNS), (TelemetryFeatures(), maintenance.COLUMNS)],
)
def test_the_runner_folds_with_the_apps_own_feature_code(
    lake: Path, feature_set: FeatureSet[Any], columns: tuple[str, ...]
) -> None:
    code = feature_code(feature_set)
    before = set(sys.modules)
    loaded = getattr(spark_runner.load_modules(code["sources"])[code["module"]], code["entry"])()
    rows = bronze_rows(Lake(str(lake)), Reads(), feature_set.event_type, columns)[:2000]

    assert type(loaded) is not type(feature_set) and set(sys.modules) == before
    assert list(code["sources"]) == ["shared.features.base", type(feature_set).__module__]
    for source, module in zip(code["sources"].values(), code["sources"], strict=True):
        assert source == (PROJECT / (module.replace(".", "/") + ".py")).read_text()
    expected = [found for _, found in point_in_time(feature_set, rows)]
    assert [found for _, found in point_in_time(loaded, rows)] == expected


def test_feature_code_may_import_only_what_the_cluster_has() -> None:
    class NotPortable:
        __module__ = "shared.models.fraud"  # imports numpy and the lake

    with pytest.raises(FeatureCodeError, match="numpy, which the cluster does not have"):
        feature_code(NotPortable())  # type: ignore[arg-type]


def test_the_runner_is_self_contained_and_tells_its_two_kinds_of_job_apart() -> None:
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
    beyond_stdlib = {name for name in imported if name not in sys.stdlib_module_names}
    assert beyond_stdlib == {"pyspark", "numpy", "pandas", "onnxruntime"}
    assert spark_runner.SCORING_PREFIX == batch_engine.SCORING_PREFIX
    assert spark_runner.PAYLOAD_FORMAT == scoring_job.PAYLOAD_FORMAT
    assert ":" not in encode_job("m", ["SELECT 'a:b' AS x"] * 50)  # base64 has no colon


# The figures of a finished run.


def _submission(**changes: Any) -> ScoringSubmission:
    submission = ScoringSubmission(
        model="fraud",
        version=1,
        source="gold.payments_sample",
        source_version=0,
        output="gold.fraud_scores",
        run_id="score:fraud:42",
        payload_uri="/models/fraud/batch/x/job.json",
        remote=RunState("fake-spark", "run-7", RunStatus.PENDING),
        poll_first_s=5.0,
        poll_max_s=60.0,
        run_timeout_s=600.0,
    )
    return msgspec.structs.replace(submission, **changes)


def _commit(
    lake: Path, figures: dict[str, Any] | None, model: str = "fraud", entity: str = "account_id"
) -> None:
    """A commit to gold/<model>_scores as the runner's Delta write makes it (`userMetadata`)."""
    empty = pa.Table.from_pylist([], output_schema(entity))
    properties = CommitProperties(custom_metadata={"userMetadata": json.dumps(figures)})
    write_deltalake(
        str(lake / "gold" / f"{model}_scores"),
        empty,
        mode="append",
        commit_properties=properties if figures is not None else None,
    )


def test_finish_reports_the_figures_the_runs_commit_carries(
    remote: SparkScoring, tmp_path: Path
) -> None:
    own = dataclasses.replace(remote, local=BatchScoring(Lake(str(tmp_path)), remote.local.models))
    final = RunState("fake-spark", "run-7", RunStatus.SUCCEEDED)
    with pytest.raises(MissingData, match="run-7 succeeded, but gold.fraud_scores does not"):
        own.finish(FinishScoring(_submission(), final))

    figures = {"run_id": "score:fraud:42", "rows_scored": 90, "rows_skipped": 3, "alerts": 4}
    _commit(tmp_path, {**figures, "run_id": "score:fraud:41", "rows_scored": 1})
    _commit(tmp_path, figures)
    _commit(tmp_path, None)  # another writer afterwards
    result = own.finish(FinishScoring(_submission(), final)).payload()
    assert result == {
        "model": "fraud",
        "version": 1,
        "source": "gold.payments_sample",
        "source_version": 0,
        "output": "gold.fraud_scores",
        "output_version": 1,
        "rows_scored": 90,
        "rows_skipped": 3,
        "alerts": 4,
        "engine": "fake-spark",
        "engine_run_id": "run-7",
    }
    unknown = own.finish(FinishScoring(_submission(run_id="score:fraud:43"), final))
    assert (unknown.output_version, unknown.rows_scored, unknown.alerts) == (2, None, None)


# The orchestration, replayed by the SDK over recorded histories.

ORCHESTRATOR = batch_score_orchestrator.build().get_user_function()
REQUEST = {"model": "fraud"}
SUBMITTED = {
    "model": "fraud",
    "version": 1,
    "source": "silver.payment_transaction",
    "source_version": 3,
    "output": "gold.fraud_scores",
    "run_id": "i1",
    "payload_uri": "abfss://lake@acct.dfs.core.windows.net/models/fraud/batch/i1-x/job.json",
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
FINISHED = {
    "model": "fraud",
    "version": 1,
    "source": "silver.payment_transaction",
    "source_version": 3,
    "output": "gold.fraud_scores",
    "output_version": 7,
    "rows_scored": 1000,
    "rows_skipped": 2,
    "alerts": 12,
    "engine": "databricks",
    "engine_run_id": "1001",
}


def _state(status: str, message: str = "") -> dict[str, Any]:
    return {**SUBMITTED["remote"], "status": status, "message": message}


def _submitted() -> History:
    return History(BATCH_SCORE, REQUEST).activity(BATCH_SCORE_ACTIVITY, {"submitted": SUBMITTED})


def _activities(state: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(name, given) for name, given in scheduled(state) if name != "timer"]


def test_a_local_scoring_is_the_orchestrations_output() -> None:
    local = {**FINISHED, "output_version": 2}
    del local["engine"], local["engine_run_id"]
    state = History(BATCH_SCORE, REQUEST).activity(BATCH_SCORE_ACTIVITY, local).replay(ORCHESTRATOR)
    assert state["isDone"] and names(state) == [BATCH_SCORE_ACTIVITY]
    assert scheduled(state)[0][1] == {"model": "fraud", "run_id": "i1"}
    assert state["output"] == local


def test_a_remote_run_is_polled_with_growing_timers_then_finished() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(SCORING_STATE, _state("running"))
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
    history.activity(SCORING_STATE, _state("succeeded"))
    history.activity(FINISH_SCORING, FINISHED)

    state = history.replay(ORCHESTRATOR)

    assert state["isDone"], state
    assert _activities(state) == [
        (BATCH_SCORE_ACTIVITY, {"model": "fraud", "run_id": "i1"}),
        (SCORING_STATE, {"run_id": "1001"}),
        (SCORING_STATE, {"run_id": "1001"}),
        (FINISH_SCORING, {"submission": SUBMITTED, "final": _state("succeeded")}),
    ]
    assert state["output"] == FINISHED


def test_a_failed_run_ends_with_its_reason() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(SCORING_STATE, _state("failed", "TERMINATED/FAILED: ImportError: onnx"))
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"] and FINISH_SCORING not in names(state)
    assert state["output"] == {
        "model": "fraud",
        "error": "the databricks run 1001 failed: TERMINATED/FAILED: ImportError: onnx",
        "permanent": True,
    }


def test_a_run_past_its_timeout_is_cancelled() -> None:
    history = _submitted()
    at = T0
    for seconds in (5, 8, 8, 8, 8, 8, 8, 7):  # 60 s: the last timer fires at the deadline
        at += timedelta(seconds=seconds)
        history.timer(at).activity(SCORING_STATE, _state("running"))
    history.activity(CANCEL_SCORING, _state("cancelled"))
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"], state
    assert names(state)[-1] == CANCEL_SCORING
    assert state["output"] == {
        "model": "fraud",
        "error": "timed out after 60 s: the databricks run 1001 asked to cancel (cancelled)",
        "permanent": True,
    }


def test_a_cancel_event_cancels_the_remote_run() -> None:
    history = _submitted()
    history.create_timer(T0 + timedelta(seconds=5))
    history.turn(1).raised(CANCEL_EVENT)
    history.activity(CANCEL_SCORING, _state("running"))
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"], state
    assert state["output"]["error"] == (
        "cancelled: the databricks run 1001 asked to cancel (running)"
    )


def test_a_permanent_failure_while_polling_ends_the_scoring() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(SCORING_STATE, {"error": "UnknownRun: no run 1001", "permanent": True})
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"]
    assert state["output"]["error"] == "the databricks run 1001: UnknownRun: no run 1001"


def test_figures_that_cannot_be_read_end_the_scoring_with_the_reason() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(SCORING_STATE, _state("succeeded"))
    history.activity_failed(FINISH_SCORING, "OSError: the lake is unreachable", attempts=4)
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"], state
    assert state["output"]["error"].startswith("the databricks run 1001 succeeded; its figures: ")
    assert "the lake is unreachable" in state["output"]["error"]


# The activities, on a platform whose batch engine runs scorings.


@pytest.fixture
def platform(
    installed: Any, lake: Path, remote: SparkScoring, engine: FakeScoringEngine, tmp_path: Path
) -> Any:
    platform = bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path / "platform")}))
    return installed(
        dataclasses.replace(
            platform,
            lazy_batch_scoring=Lazy(lambda: remote.local),
            lazy_pipeline=Lazy(lambda: medallion_for(lake, engine)),
            lazy_remote_scoring=Lazy(lambda: remote),
        )
    )


def test_the_activities_submit_poll_and_finish_through_the_engine(
    platform: Any, engine: FakeScoringEngine, lake: Path
) -> None:
    answer = model_batch_score({"model": "maintenance", "run_id": "score:maintenance:a"})
    submission = answer["submitted"]
    assert submission["remote"]["status"] == "pending" and len(engine.jobs) == 1
    run_id = submission["remote"]["run_id"]
    assert model_batch_score_state({"run_id": run_id})["status"] == "pending"
    assert model_batch_score_state({"run_id": "nope"}) == {
        "error": "UnknownRun: fake-spark has no run nope",
        "permanent": True,
    }
    engine.finish(run_id, RunStatus.SUCCEEDED)
    final = model_batch_score_state({"run_id": run_id})
    figures = {"run_id": "score:maintenance:a", "rows_scored": 5, "rows_skipped": 0, "alerts": 1}
    _commit(lake, figures, "maintenance", "device_id")
    finished = model_batch_score_finish({"submission": submission, "final": final})
    assert finished["engine_run_id"] == run_id and finished["rows_scored"] == 5
    assert finished["output_version"] == DeltaTable(str(lake / "gold/maintenance_scores")).version()


def test_the_submit_activity_reports_what_cannot_be_scored(
    platform: Any, engine: FakeScoringEngine
) -> None:
    answer = model_batch_score({"model": "fraud", "source": "gold.nothing_here", "run_id": "r"})
    assert answer == {
        "model": "fraud",
        "error": "no table gold.nothing_here in the lake yet",
        "permanent": True,
    }
    assert engine.jobs == []
