"""Batch inference on a real local Spark gives what DuckDB gives: the job the app builds for a
cluster (its payload, read through Spark; the feature code it carries; the ONNX file),
scored by `spark_runner.score` over the same source, has the same event ids, the same scores
(to 1e-6) and the same other columns as `BatchScoring` on DuckDB, and the same figures.

As in test_gold_on_spark.py, Spark here has no Delta reader or writer (the delta-spark jars come
only from Maven), so the source is given as the Parquet files of its current Delta version,
and the output is written as Parquet; the runner's function is shipped to the Python workers
by value, as it is on a cluster that does not have this package.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from shared.batch import spark_runner
from shared.models.batch_scoring import BatchScoreRequest, BatchScoreResult, BatchScoring
from shared.models.remote_scoring import SparkScoring
from shared.models.service import Models
from shared.pipeline.lake import Lake
from tests.fakes.scoring import FakeScoringEngine
from tests.modeldata import land_history, refresh, trained_models
from tests.spark import local_spark

pyspark = pytest.importorskip("pyspark")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]
NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark-scoring") / "lake"
    land_history(root, days=2, rate=0.1, seed=5, label_delay_scale=0.2, fraud_rate=0.08, end=NOW)
    refresh(root)
    return root


@pytest.fixture(scope="module")
def models(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    return trained_models(lake, tmp_path_factory.mktemp("registry"), ("fraud", "maintenance"))


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark import cloudpickle

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSPARK_PYTHON", sys.executable)  # the workers need this environment
        # As on a cluster, where the runner is `__main__`: its code travels with the job.
        cloudpickle.register_pickle_by_value(spark_runner)
        timestamps = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
        with local_spark("batch-scoring-parity", **timestamps) as session:
            yield session
        cloudpickle.unregister_pickle_by_value(spark_runner)


def _both(
    spark: Any, lake: Path, models: Models, tmp_path: Path, request: BatchScoreRequest
) -> tuple[dict[str, Any], pa.Table, BatchScoreResult, pa.Table]:
    """The request scored on Spark (the job the app builds) and on DuckDB: figures and rows."""
    local = BatchScoring(Lake(str(lake)), models)
    engine = FakeScoringEngine()
    SparkScoring(local, engine, clock=lambda: NOW).submit(request)
    [job] = engine.jobs
    payload = json.loads(spark_runner.read_bytes(spark, job.payload_uri))
    table = DeltaTable(payload["source_uri"])
    assert table.version() == payload["source_version"]
    source = spark.read.option("basePath", payload["source_uri"]).parquet(*table.file_uris())
    payload["output_uri"] = str(tmp_path / "spark_scores")
    figures = spark_runner.score(spark, payload, source=source, output_format="parquet")
    result = local.run(request, NOW)
    scores = DeltaTable(str(lake / "gold" / f"{request.model}_scores")).to_pyarrow_table()
    expected = scores.filter(pa.compute.equal(pa.compute.field("source"), result.source))
    return figures, pq.read_table(payload["output_uri"]), result, expected


def _same_rows(got: pa.Table, expected: pa.Table) -> None:
    assert got.schema.names == expected.schema.names
    assert [f.type for f in got.schema] == [f.type for f in expected.schema]
    by_id = {row["event_id"]: row for row in got.to_pylist()}
    rows = {row["event_id"]: row for row in expected.to_pylist()}
    assert by_id.keys() == rows.keys() and len(by_id) == got.num_rows
    assert max(abs(by_id[key]["score"] - row["score"]) for key, row in rows.items()) <= 1e-6
    different = [
        (key, column, by_id[key][column], value)
        for key, row in rows.items()
        for column, value in row.items()
        if column != "score" and by_id[key][column] != value
    ]
    assert different == []


@pytest.mark.parametrize("model", ["fraud", "maintenance"])
def test_spark_scores_silver_as_duckdb_does(
    spark: Any, lake: Path, models: Models, tmp_path: Path, model: str
) -> None:
    request = BatchScoreRequest(model, run_id=f"score:{model}:spark")
    figures, got, result, expected = _both(spark, lake, models, tmp_path, request)

    assert result.rows_scored > 3000 and result.alerts > 0
    _same_rows(got, expected)
    assert figures == {
        "run_id": f"score:{model}:spark",
        "model": model,
        "version": 1,
        "source": result.source,
        "source_version": result.source_version,
        "rows_scored": result.rows_scored,
        "rows_skipped": result.rows_skipped,
        "alerts": result.alerts,
    }


def test_rows_that_cannot_be_read_are_skipped_as_duckdb_skips_them(
    spark: Any, lake: Path, models: Models, tmp_path: Path
) -> None:
    silver = DeltaTable(str(lake / "silver" / "payment_transaction")).to_pyarrow_table()
    rows = silver.slice(0, 300).to_pylist()
    hostile = [
        {**rows[0], "event_id": "null-amount", "amount": None},
        {**rows[1], "event_id": "no-time", "event_time": None},
        {**rows[2], "event_id": None},
        {**rows[3], "event_id": "no-account", "account_id": None},
        {**rows[4], "event_id": "huge", "amount": None, "country": "\x00" * 300},
        {**rows[5], "event_id": "null-country", "country": None},  # read, as DuckDB reads it
        {**rows[6], "event_id": rows[7]["event_id"]},  # a duplicate: scored once
        {**rows[8], "event_id": "year-1", "event_time": dt.datetime(1, 1, 1, tzinfo=dt.UTC)},
        {
            **rows[9],
            "event_id": "year-9999",
            "event_time": dt.datetime(9999, 12, 31, tzinfo=dt.UTC),
        },
    ]
    table = pa.Table.from_pylist(rows + hostile, schema=silver.schema)
    write_deltalake(str(lake / "gold" / "hostile_payments"), table, mode="overwrite")
    request = BatchScoreRequest("fraud", source="gold.hostile_payments", run_id="hostile")
    figures, got, result, expected = _both(spark, lake, models, tmp_path, request)

    _same_rows(got, expected)
    assert result.rows_skipped == 5
    assert {"null-country", "year-1", "year-9999"} <= set(got["event_id"].to_pylist())
    assert (figures["rows_scored"], figures["rows_skipped"], figures["alerts"]) == (
        result.rows_scored,
        result.rows_skipped,
        result.alerts,
    )


def test_the_runner_reads_the_payload_its_argument_names(
    spark: Any,
    lake: Path,
    models: Models,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = FakeScoringEngine()
    local = BatchScoring(Lake(str(lake)), models)
    SparkScoring(local, engine).submit(BatchScoreRequest("maintenance", run_id="score:m:main"))
    [job] = engine.jobs
    given: list[dict[str, Any]] = []

    def scored(session: Any, payload: dict[str, Any]) -> dict[str, Any]:
        given.append(payload)
        return {"rows_scored": 7}

    monkeypatch.setattr(spark_runner, "score", scored)  # Delta is not here to write to
    assert spark_runner.main(["spark_runner.py", job.argument]) == 0

    [payload] = given
    assert payload["run_id"] == "score:m:main" and payload["model"] == "maintenance"
    assert '{"batch_scoring": {"rows_scored": 7}}' in capsys.readouterr().out
