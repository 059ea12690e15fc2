"""Gold SQL resolved for DuckDB and transpiled to Spark SQL for Databricks and Synapse."""

from __future__ import annotations

import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st

from shared.batch.sql import (
    ModelSqlError,
    decode_job,
    duckdb_sql,
    encode_job,
    referenced_tables,
    spark_sql,
    spark_statements,
)
from shared.pipeline.gold import load_models

pytestmark = pytest.mark.unit

QUERY = (
    "WITH recent AS (SELECT * FROM silver.payment_transaction) "
    "SELECT r.account_id, count(*) AS n FROM recent AS r "
    "JOIN silver.app_interaction ON app_interaction.user_id = r.account_id GROUP BY r.account_id"
)
INPUTS = {
    "silver.payment_transaction": "abfss://lake@acct.dfs.core.windows.net/silver/payment_transaction",
    "silver.app_interaction": "/lake/silver/app_interaction",
}


def test_referenced_tables_are_the_layer_qualified_ones_not_ctes() -> None:
    assert referenced_tables(QUERY) == {"silver.payment_transaction", "silver.app_interaction"}


def test_duckdb_sql_reads_registered_relations_and_keeps_table_names_as_aliases() -> None:
    resolved = duckdb_sql(
        QUERY, {"silver.payment_transaction": "input_0", "silver.app_interaction": "input_1"}
    )
    assert '"input_0"' in resolved
    assert '"input_1" AS app_interaction' in resolved
    assert "silver." not in resolved


def test_spark_sql_reads_delta_paths() -> None:
    resolved = spark_sql(QUERY, INPUTS)
    assert f"delta.`{INPUTS['silver.payment_transaction']}`" in resolved
    assert "delta.`/lake/silver/app_interaction` AS app_interaction" in resolved


def test_spark_statements_replace_the_output_table() -> None:
    [statement] = spark_statements(QUERY, INPUTS, "/lake/gold/x`y")
    assert statement.startswith("CREATE OR REPLACE TABLE delta.`/lake/gold/x``y` USING DELTA AS")
    sqlglot.parse_one(statement, read="spark")


def test_an_input_that_is_not_declared_is_refused() -> None:
    with pytest.raises(ModelSqlError, match="silver.app_interaction"):
        spark_sql(QUERY, {"silver.payment_transaction": "/x"})


def test_missing_inputs_become_typed_empty_relations_in_both_dialects() -> None:
    empty = {"silver.app_interaction": {"user_id": "VARCHAR", "event_time": "TIMESTAMPTZ"}}
    duck = duckdb_sql(QUERY, {"silver.payment_transaction": "input_0"}, empty)
    spark = spark_sql(QUERY, INPUTS, empty)
    assert 'CAST(NULL AS TEXT) AS "user_id"' in duck and "WHERE 1 = 0" in duck
    assert "CAST(NULL AS TIMESTAMP) AS `event_time`" in spark


@pytest.mark.parametrize("name", sorted(load_models()))
def test_every_gold_model_transpiles_to_spark_sql_that_parses(name: str) -> None:
    model = load_models()[name]
    inputs = {table: f"abfss://lake@acct.dfs.core.windows.net/{table}" for table in model.inputs}
    for statement in spark_statements(model.sql, inputs, f"/gold/{name}"):
        tree = sqlglot.parse_one(statement, read="spark")
        assert tree is not None
        assert "QUANTILE" not in statement.upper()  # DuckDB-only names must not leak


def test_percentiles_become_spark_s_exact_percentile() -> None:
    model = load_models()["device_health_hourly"]
    inputs = {table: "/x" for table in model.inputs}
    spark = spark_sql(model.sql, inputs)
    assert "PERCENTILE(vibration_mm_s, 0.95)" in spark and "APPROX" not in spark
    with pytest.raises(ModelSqlError, match="ascending"):
        spark_sql(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x DESC) FROM silver.t",
            {"silver.t": "/x"},
        )


@given(st.text(), st.lists(st.text(), max_size=5))
def test_an_encoded_job_decodes_to_itself(model: str, statements: list[str]) -> None:
    assert decode_job(encode_job(model, statements)) == (model, statements)


@pytest.mark.parametrize("garbage", ["", "not base64!", "eyJ4IjogMX0=", "WzFd"])
def test_anything_else_is_not_a_job(garbage: str) -> None:
    with pytest.raises(ModelSqlError):
        decode_job(garbage)
