"""The same gold on every engine: each gold model's Spark SQL (as Databricks and Synapse run it)
on a real local Spark gives the rows and column types DuckDB gives, over the same silver data.

Spark here has no Delta reader (the delta-spark jars come only from Maven, which these machines
cannot reach), so each input is given to Spark as the Parquet files of its current Delta version.
Floating point columns (averages, sums of doubles, percentiles over doubles) may differ in the
last bits with the order of the additions: they are compared to a relative 1e-9; everything else
is compared exactly.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from benchmarks.pipeline_data import generate
from shared.batch.duckdb_engine import DuckDBEngine
from shared.batch.engine import SqlJob
from shared.batch.sql import encode_job, spark_sql
from shared.pipeline.gold import GoldModel, load_models
from tests.devhost_process import PROJECT_ROOT
from tests.spark import local_spark

pyspark = pytest.importorskip("pyspark")
pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = {
    "payment_transaction": 30_000,
    "iot_telemetry": 20_000,
    "app_interaction": 20_000,
    "payment_chargeback": 300,
    "device_failure": 100,
}
MODELS = load_models()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark") / "lake"
    generate(root, ROWS)
    dead = pa.table(
        {
            "event_type": ["payment.transaction", None, "iot.telemetry"],
            "ingested_at": pa.array(
                [dt.datetime(2024, 5, 1, h, 30, tzinfo=dt.UTC) for h in (0, 0, 7)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    write_deltalake(str(root / "bronze" / "deadletter"), dead)
    return root


@pytest.fixture(scope="module")
def spark(lake: Path) -> Iterator[Any]:
    with local_spark("gold-parity") as session:
        for layer in ("silver", "bronze"):
            for table in (lake / layer).iterdir():
                files = DeltaTable(str(table)).file_uris()  # the current version's files only
                frame = session.read.option("basePath", str(table)).parquet(*files)
                frame.createOrReplaceTempView(f"{layer}_{table.name}")
        yield session


def duckdb_result(lake: Path, model: GoldModel) -> pa.Table:
    inputs = {name: str(lake / name.replace(".", "/")) for name in model.inputs}
    job = SqlJob(model=model.name, sql=model.sql, inputs=inputs, output=str(lake / "unused"))
    return DuckDBEngine().query(job)


def arrow_kind(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_timestamp(kind):
        return "timestamp" if kind.tz else "timestamp_ntz"
    if pa.types.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    return {pa.int64(): "bigint", pa.int32(): "int", pa.float64(): "double", pa.date32(): "date"}[
        kind
    ]


def spark_kind(kind: Any) -> str:
    from pyspark.sql import types as t

    if isinstance(kind, t.DecimalType):
        return f"decimal({kind.precision},{kind.scale})"
    names = {
        t.StringType: "string",
        t.TimestampType: "timestamp",
        t.TimestampNTZType: "timestamp_ntz",
        t.LongType: "bigint",
        t.IntegerType: "int",
        t.DoubleType: "double",
        t.DateType: "date",
    }
    return names[type(kind)]


def same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(left, Decimal) and isinstance(right, Decimal):
        return left == right and left.as_tuple().exponent == right.as_tuple().exponent
    return bool(left == right)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_gold_model_gives_the_same_rows_and_types_on_spark(
    name: str, lake: Path, spark: Any
) -> None:
    model = MODELS[name]
    expected = duckdb_result(lake, model)
    views = {table: table.replace(".", "_") for table in model.inputs}
    frame = spark.sql(spark_sql(model.sql, views, source=None))
    spark_types = {f.name: spark_kind(f.dataType) for f in frame.schema.fields}
    duckdb_types = {f.name: arrow_kind(f.type) for f in expected.schema}
    assert spark_types == duckdb_types
    got = frame.toArrow().to_pylist()
    rows = expected.to_pylist()
    assert len(got) == len(rows) > 0

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in model.keys)

    assert len({key(r) for r in rows}) == len(rows), f"{name}: its keys are not unique"
    by_key = {key(r): r for r in got}
    for row in rows:
        other = by_key[key(row)]
        different = {c: (row[c], other[c]) for c in row if not same(row[c], other[c])}
        assert different == {}, f"{name} at {key(row)}"


def test_the_runner_runs_a_job_under_spark_submit(lake: Path, tmp_path: Path) -> None:
    model = MODELS["account_daily_spend"]
    # A Parquet variant of the job the engines submit: the same SQL, inputs read as Parquet
    # (one Delta version, so its folder holds exactly that version's files) and written so.
    inputs = {table: str(lake / table.replace(".", "/")) for table in model.inputs}
    output = tmp_path / "out"
    query = spark_sql(model.sql, inputs, source="parquet")
    job = encode_job(model.name, [f"INSERT OVERWRITE DIRECTORY '{output}' USING parquet\n{query}"])
    submit = shutil.which("spark-submit", path=str(Path(sys.executable).parent))
    assert submit is not None
    done = subprocess.run(
        [submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
        + [str(PROJECT_ROOT / "shared" / "batch" / "spark_runner.py"), job],
        env={
            **os.environ,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_HOME": str(Path(pyspark.__file__).parent),  # pip's pyspark is the distribution
            "PYSPARK_PYTHON": sys.executable,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[account_daily_spend] INSERT OVERWRITE DIRECTORY" in done.stdout
    written = pq.read_table(output)
    assert written.num_rows == duckdb_result(lake, model).num_rows
