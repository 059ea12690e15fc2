"""The locked DuckDB of /api/ask: admitted queries over real Delta gold tables, the wall-clock
and memory limits, and the lockdown holding even for SQL the gate would never let through."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from shared.ai.locked_query import (
    GoldTableMissing,
    QueryFailed,
    QueryLimits,
    QueryTimeout,
    gold_datasets,
    open_locked,
    run_gated,
    run_locked,
)
from shared.ai.sql_gate import check_sql
from shared.batch.sql import duckdb_sql
from shared.pipeline.gold import load_models
from shared.pipeline.lake import Lake
from shared.pipeline.specs import SILVER_SPECS
from tests.unit.test_ai_sql_gate import GOLD_TABLES, VALID

pytestmark = pytest.mark.unit

ROWS = 12
DAY0 = dt.date(2024, 5, 1)
HOUR0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
SLOW = "SELECT sum(a.range * b.range) FROM range(1000000) AS a CROSS JOIN range(1000000) AS b"


def _gold_schema(name: str) -> pa.Schema:
    """The schema the gold model builds: its SQL run over empty, typed inputs."""
    model = load_models()[name]
    empty = {
        table: model.empty_if_missing.get(table)
        or {**SILVER_SPECS[table.split(".", 1)[1]].typed, "event_date": "DATE"}
        for table in model.inputs
    }
    schema: pa.Schema = (
        duckdb.connect().sql(duckdb_sql(model.sql, {}, empty)).to_arrow_table().schema
    )
    return schema


def _values(field: pa.Field) -> list[Any]:
    kind = field.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return [f"{field.name.split('_')[0][0]}-{i % 3}" for i in range(ROWS)]
    if pa.types.is_date(kind):
        return [DAY0 + dt.timedelta(days=i % 4) for i in range(ROWS)]
    if pa.types.is_timestamp(kind):
        return [HOUR0 + dt.timedelta(hours=i) for i in range(ROWS)]
    if pa.types.is_integer(kind):
        return [i + 1 for i in range(ROWS)]
    if pa.types.is_floating(kind):
        return [i * 0.25 for i in range(ROWS)]
    if pa.types.is_decimal(kind):
        return [Decimal(i * 1025).scaleb(-2) for i in range(ROWS)]
    raise AssertionError(f"no test values for {field}")


def _gold_rows(schema: pa.Schema) -> pa.Table:
    timestamps = pa.timestamp("us", tz="UTC")
    fields = [pa.field(f.name, timestamps) if pa.types.is_timestamp(f.type) else f for f in schema]
    return pa.table({f.name: pa.array(_values(f), f.type) for f in fields})


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Every gold table in a local Delta lake, in the gold models' own schemas, 12 rows each."""
    root = tmp_path_factory.mktemp("lake")
    for name in GOLD_TABLES:
        write_deltalake(str(root / "gold" / name), _gold_rows(_gold_schema(name)))
    return Lake(str(root))


@pytest.mark.parametrize("sql", VALID, ids=lambda v: repr(v)[:48])
def test_every_admitted_analytical_query_runs_over_the_gold_tables(sql: str, lake: Lake) -> None:
    gated = check_sql(sql, GOLD_TABLES, max_limit=50)
    result = run_gated(gated, lake, QueryLimits(max_rows=50))
    assert result.columns
    assert len(result.rows) <= gated.limit
    assert set(result.versions) == gated.tables


def test_a_result_holds_columns_rows_timings_and_table_versions(lake: Lake) -> None:
    gated = check_sql(
        "SELECT currency, count(*) AS days, sum(txn_count) AS txns, min(day) AS first_day "
        "FROM gold.merchant_daily GROUP BY currency",
        GOLD_TABLES,
    )
    result = run_gated(gated, lake)
    assert result.columns == ("currency", "days", "txns", "first_day")
    assert sorted(result.rows) == [
        ("c-0", 4, 1 + 4 + 7 + 10, DAY0),
        ("c-1", 4, 2 + 5 + 8 + 11, DAY0),
        ("c-2", 4, 3 + 6 + 9 + 12, DAY0),
    ]
    assert not result.truncated
    assert result.versions == {"merchant_daily": 0}
    assert result.setup_ms > 0 and result.run_ms > 0


def test_times_come_back_in_utc(lake: Lake) -> None:
    gated = check_sql("SELECT max(hour) AS last_hour FROM gold.ingestion_kpis", GOLD_TABLES)
    [(last_hour,)] = run_gated(gated, lake).rows
    assert last_hour == HOUR0 + dt.timedelta(hours=ROWS - 1)
    assert last_hour.utcoffset() == dt.timedelta(0)


def test_rows_past_max_rows_are_cut_and_flagged(lake: Lake) -> None:
    datasets, versions = gold_datasets(lake, ["merchant_daily"])
    result = run_locked("SELECT * FROM merchant_daily", datasets, QueryLimits(max_rows=3))
    assert len(result.rows) == 3 and result.truncated


def test_a_gold_table_not_built_yet_is_named(tmp_path: Path) -> None:
    gated = check_sql(
        "SELECT * FROM gold.item_pairs JOIN gold.item_popularity ON true", GOLD_TABLES
    )
    with pytest.raises(GoldTableMissing, match="item_pairs, item_popularity") as missing:
        run_gated(gated, Lake(str(tmp_path)))
    assert missing.value.status == 503


LOCKED_SETTINGS = {
    "enable_external_access": "false",
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "false",
    "allow_community_extensions": "false",
    "allow_unsigned_extensions": "false",
    "allow_persistent_secrets": "false",
    "python_enable_replacements": "false",
    "temp_directory": "",
    "lock_configuration": "true",
    "threads": "1",
    "TimeZone": "UTC",
}


def test_the_connection_is_locked_down_before_the_query() -> None:
    limits = QueryLimits(memory_limit="64MB", threads=1)
    connection = open_locked({"t": pa.table({"a": [1, 2]})}, limits)
    try:
        settings_now = dict(
            connection.execute("SELECT name, value FROM duckdb_settings()").fetchall()
        )
        assert connection.execute("SELECT sum(a) FROM t").fetchall() == [(3,)]
    finally:
        connection.close()
    assert {name: settings_now[name] for name in LOCKED_SETTINGS} == LOCKED_SETTINGS
    amount, unit = settings_now["memory_limit"].split()
    assert unit == "MiB" and float(amount) <= 64


# SQL the gate refuses, run straight on the locked connection: the second wall holds on its own.
BYPASS = (
    ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
    ("SELECT * FROM read_text('/etc/passwd')", "disabled by configuration"),
    ("SELECT * FROM glob('/*')", "disabled by configuration"),
    ("SELECT * FROM '/etc/passwd'", "does not exist"),
    ("SELECT * FROM '{tmp}/x.csv'", "disabled by configuration"),
    ("COPY (SELECT 1) TO '{tmp}/out.csv'", "disabled by configuration"),
    ("COPY merchant_daily TO '{tmp}/out.parquet'", "disabled by configuration"),
    ("ATTACH '{tmp}/evil.db' AS evil", "disabled by configuration"),
    ("EXPORT DATABASE '{tmp}/dump'", "disabled by configuration"),
    ("INSTALL httpfs", "disabled by configuration"),
    ("LOAD httpfs", "disabled"),
    ("SET enable_external_access = true", "locked"),
    ("SET lock_configuration = false", "locked"),
    ("RESET enable_external_access", "locked"),
    ("SET memory_limit = '100GB'", "locked"),
    ("PRAGMA threads = 64", "locked"),
    ("SET allow_community_extensions = true", "locked"),
    ("SET autoload_known_extensions = true", "locked"),
    ("SET temp_directory = '{tmp}/spill'", "locked"),
)


@pytest.mark.parametrize(("sql", "reason"), BYPASS, ids=lambda v: repr(v)[:40])
def test_the_locked_connection_refuses_what_the_gate_would(
    sql: str, reason: str, lake: Lake, tmp_path: Path
) -> None:
    datasets, _ = gold_datasets(lake, ["merchant_daily"])
    with pytest.raises(QueryFailed, match=reason) as failed:
        run_locked(sql.format(tmp=tmp_path), datasets)
    assert "\n" not in str(failed.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_connection_scans_no_python_variables() -> None:
    secret_rows = pa.table({"secret": ["s3cr3t"]})
    with pytest.raises(QueryFailed, match="secret_rows"):
        run_locked("SELECT * FROM secret_rows", {})
    assert secret_rows.num_rows == 1


def test_a_slow_query_is_interrupted_at_the_time_limit() -> None:
    started = time.perf_counter()
    with pytest.raises(QueryTimeout, match="0.3 s") as timeout:
        run_locked(SLOW, {}, QueryLimits(timeout_s=0.3))
    assert time.perf_counter() - started < 1.5
    assert timeout.value.status == 504


def test_a_query_within_the_time_limit_is_not_interrupted_later() -> None:
    result = run_locked("SELECT 42 AS answer", {}, QueryLimits(timeout_s=0.05))
    time.sleep(0.1)  # past the limit: the timer was cancelled with the query's end
    assert result.rows == ((42,),)


def test_the_memory_limit_is_a_hard_limit() -> None:
    started = time.perf_counter()
    with pytest.raises(QueryFailed, match="64MB of memory") as failed:
        run_locked(
            "SELECT count(DISTINCT range) FROM range(50000000)",
            {},
            QueryLimits(memory_limit="64MB", threads=1),
        )
    assert time.perf_counter() - started < 5
    assert failed.value.status == 422


def test_a_duckdb_error_is_one_short_line(lake: Lake) -> None:
    gated = check_sql("SELECT no_such_column FROM gold.merchant_daily", GOLD_TABLES)
    with pytest.raises(QueryFailed, match="no_such_column") as failed:
        run_gated(gated, lake)
    assert "\n" not in str(failed.value) and len(str(failed.value)) <= 300


@pytest.mark.parametrize(
    "limits",
    [{"timeout_s": 0}, {"threads": 0}, {"max_rows": -1}],
)
def test_limits_must_be_positive(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="limits"):
        QueryLimits(**limits)


_text = st.lists(
    st.one_of(
        st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
        st.sampled_from([" ", "\n", "\t", "'", '"', "\\", ";", "--", "/*", "*/", "$$", "\\'"]),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=40, deadline=None)
@given(text=_text)
def test_a_string_literal_reaches_duckdb_as_the_same_string(text: str) -> None:
    literal = exp.Literal.string(text).sql(dialect="duckdb")
    gated = check_sql(f"SELECT {literal} AS s", GOLD_TABLES)
    assert run_locked(gated.sql, {}).rows == ((text,),)
