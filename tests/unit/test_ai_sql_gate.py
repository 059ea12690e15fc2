"""The SQL gate of /api/ask: an adversarial corpus refused, analytical SQL admitted with a LIMIT."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

from shared.ai.sql_gate import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_SQL_BYTES,
    GatedQuery,
    RefusedSql,
    check_sql,
)
from shared.ai.sql_vocabulary import ALLOWED_NODES, ANONYMOUS_FUNCTIONS
from shared.pipeline.gold import load_models

pytestmark = pytest.mark.unit

GOLD_TABLES = tuple(sorted(load_models()))

# (SQL, a fragment of the reason it is refused with)
ADVERSARIAL: tuple[tuple[str, str], ...] = (
    # stacked statements
    ("SELECT 1; DROP TABLE merchant_daily", "one statement"),
    ("SELECT * FROM gold.merchant_daily; DELETE FROM merchant_daily", "one statement"),
    ("SELECT 1;\nSELECT 2", "one statement"),
    ("SELECT 1; COPY merchant_daily TO '/tmp/x.csv'", "one statement"),
    # statements other than a query
    ("DROP TABLE gold.merchant_daily", "only a SELECT"),
    ("DELETE FROM merchant_daily", "only a SELECT"),
    ("UPDATE merchant_daily SET txn_count = 0", "only a SELECT"),
    ("INSERT INTO merchant_daily SELECT * FROM merchant_daily", "only a SELECT"),
    ("CREATE TABLE stolen AS SELECT * FROM merchant_daily", "only a SELECT"),
    ("CREATE VIEW v AS SELECT 1", "only a SELECT"),
    ("CREATE MACRO leak() AS getenv('HOME')", "only a SELECT"),
    ("ALTER TABLE merchant_daily RENAME TO gone", "only a SELECT"),
    ("COPY merchant_daily TO '/tmp/out.csv'", "only a SELECT"),
    ("COPY (SELECT * FROM merchant_daily) TO 's3://bucket/x.parquet' (FORMAT parquet)", "only a"),
    ("COPY merchant_daily FROM '/etc/passwd'", "only a SELECT"),
    ("ATTACH '/tmp/evil.db' AS evil", "only a SELECT"),
    ("DETACH evil", "only a SELECT"),
    ("INSTALL httpfs", "only a SELECT"),
    ("LOAD httpfs", "only a SELECT"),
    ("FORCE INSTALL httpfs FROM community", "only a SELECT"),
    ("PRAGMA database_list", "only a SELECT"),
    ("PRAGMA enable_profiling", "only a SELECT"),
    ("CALL pragma_version()", "only a SELECT"),
    ("SET enable_external_access = true", "only a SELECT"),
    ("SET memory_limit = '100GB'", "only a SELECT"),
    ("RESET threads", "only a SELECT"),
    ("SET VARIABLE secret = 1", "only a SELECT"),
    ("EXPORT DATABASE '/tmp/dump'", "does not parse"),
    ("IMPORT DATABASE '/tmp/dump'", "does not parse"),
    ("VACUUM", "only a SELECT"),
    ("CHECKPOINT", "only a SELECT"),
    ("SUMMARIZE merchant_daily", "only a SELECT"),
    ("DESCRIBE merchant_daily", "only a SELECT"),
    ("SHOW TABLES", "only a SELECT"),
    ("EXPLAIN ANALYZE SELECT * FROM merchant_daily", "only a SELECT"),
    ("BEGIN TRANSACTION", "only a SELECT"),
    ("(SELECT * FROM merchant_daily)", "only a SELECT"),
    # table functions, files and URLs
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto"),
    ("SELECT * FROM read_parquet('s3://bucket/*.parquet')", "read_parquet"),
    ("SELECT * FROM parquet_scan('x.parquet')", "parquet_scan"),
    ("SELECT * FROM read_json_auto('/proc/self/environ')", "read_json_auto"),
    ("SELECT * FROM read_text('/etc/shadow')", "read_text"),
    ("SELECT content FROM read_blob('/root/.ssh/id_rsa')", "read_blob"),
    ("SELECT * FROM glob('/**')", "glob"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv"),
    ("SELECT * FROM delta_scan('abfss://lake@acct.dfs.core.windows.net/silver/x')", "delta_scan"),
    ("SELECT * FROM range(1000000000000)", "generate_series"),
    ("SELECT * FROM generate_series(1, 10)", "generate_series"),
    ("SELECT * FROM upper('merchant_daily')", "table functions"),
    ("SELECT * FROM 'data.csv'", "not a gold table"),
    ("SELECT * FROM '/etc/passwd'", "not a gold table"),
    ('SELECT * FROM "https://evil.example/x.parquet"', "not a gold table"),
    ("FROM '/etc/passwd'", "not a gold table"),
    ("SELECT * FROM merchant_daily m JOIN read_csv('/etc/passwd') p ON true", "read_csv"),
    ("SELECT * FROM (FROM read_csv('/etc/passwd'))", "read_csv"),
    ("SELECT * FROM merchant_daily, LATERAL (SELECT * FROM glob('/*'))", "not allowed"),
    # catalogs, settings, system tables and other layers
    ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
    ("SELECT * FROM duckdb_secrets()", "duckdb_secrets"),
    ("SELECT * FROM duckdb_tables", "not a gold table"),
    ("SELECT * FROM pragma_database_list()", "pragma_database_list"),
    ("SELECT * FROM pragma_table_info('merchant_daily')", "pragma_table_info"),
    ("SELECT * FROM information_schema.tables", "only gold tables"),
    ("SELECT * FROM pg_catalog.pg_tables", "only gold tables"),
    ("SELECT * FROM sqlite_master", "not a gold table"),
    ("SELECT * FROM silver.payment_transaction", "only gold tables"),
    ("SELECT * FROM bronze.payment_transaction", "only gold tables"),
    ("SELECT * FROM main.merchant_daily", "only gold tables"),
    ("SELECT * FROM memory.gold.merchant_daily", "only gold tables"),
    ("SELECT * FROM payment_transaction", "not a gold table"),
    ('SELECT * FROM gold."merchant_daily; DROP TABLE x"', "not a gold table"),
    # functions off the allow-list
    ("SELECT getenv('AZURE_CLIENT_SECRET')", "getenv"),
    ("SELECT current_setting('secret_directory')", "current_setting"),
    ("SELECT \"current_setting\"('memory_limit')", "current_setting"),
    ("SELECT load_extension('httpfs')", "load_extension"),
    ("SELECT * FROM query('SELECT * FROM duckdb_settings()')", "query"),
    ("SELECT * FROM query_table('merchant_daily')", "query_table"),
    ("SELECT getvariable('secret')", "getvariable"),
    ("SELECT repeat('x', 2147483647)", "repeat"),
    ("SELECT lpad('x', 1000000000, 'y')", "pad"),
    ("SELECT format('{:>1000000000}', 1)", "format"),
    ("SELECT printf('%1000000000d', 1)", "printf"),
    ("SELECT sleep_ms(100000)", "sleep_ms"),
    ("SELECT nextval('seq')", "nextval"),
    ("SELECT error('boom')", "error"),
    ("SELECT version()", "current_version"),
    ("SELECT * FROM merchant_daily WHERE 1 = 1 OR getenv('HOME') = ''", "getenv"),
    ("SELECT list_transform([1], x -> x + 1)", "not allowed"),
    # the same, hidden in subqueries, CTEs and set operations
    ("SELECT (SELECT content FROM read_text('/etc/passwd')) AS x", "read_text"),
    (
        "SELECT * FROM merchant_daily WHERE merchant_id IN (SELECT name FROM duckdb_settings())",
        "duckdb_settings",
    ),
    ("SELECT merchant_id FROM merchant_daily UNION ALL SELECT name FROM duckdb_settings()", "du"),
    ("SELECT * FROM merchant_daily UNION ALL SELECT * FROM read_parquet('x.parquet')", "read_"),
    ("WITH s AS (SELECT * FROM duckdb_settings()) SELECT * FROM s", "duckdb_settings"),
    ("WITH x AS (DELETE FROM merchant_daily RETURNING *) SELECT * FROM x", "DELETE"),
    ("WITH x AS (INSERT INTO merchant_daily VALUES (1) RETURNING *) SELECT * FROM x", "INSERT"),
    ("WITH x AS (UPDATE merchant_daily SET txn_count = 0 RETURNING *) SELECT * FROM x", "UPDATE"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", "recur"),
    ("WITH merchant_daily AS (SELECT 1 AS x) SELECT * FROM merchant_daily", "CTE may not"),
    (
        "SELECT * FROM (WITH sqlite_master AS (SELECT 1) SELECT * FROM sqlite_master) AS a, "
        "sqlite_master",
        "not a gold table",
    ),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "not a gold table"),
    ("SELECT * INTO stolen FROM merchant_daily", "SELECT INTO"),
    ("SELECT * FROM merchant_daily FOR UPDATE", "not allowed"),
    # comments hiding statements
    ("SELECT 1 /* harmless */; DROP TABLE merchant_daily", "one statement"),
    ("SELECT 1 -- a comment\n; DROP TABLE merchant_daily", "one statement"),
    ("/* SELECT 1; */ DROP TABLE merchant_daily", "only a SELECT"),
    ("-- SELECT 1\nDELETE FROM merchant_daily", "only a SELECT"),
    ("SELECT 1 /* /* nested */ still a comment */; ATTACH '/tmp/x.db'", "one statement"),
    ("SELECT 1 /* unterminated; DROP TABLE merchant_daily", "does not parse"),
    # limits
    ("SELECT * FROM merchant_daily LIMIT 10 PERCENT", "LIMIT"),
    ("SELECT * FROM merchant_daily LIMIT 10%", "LIMIT"),
    ("SELECT * FROM merchant_daily LIMIT (SELECT 1000000)", "LIMIT"),
    ("SELECT * FROM merchant_daily LIMIT -1", "LIMIT"),
    ("SELECT * FROM merchant_daily LIMIT 1e9", "LIMIT"),
    ("SELECT * FROM merchant_daily LIMIT 5 WITH TIES", "LIMIT"),
    ("SELECT * FROM merchant_daily OFFSET getenv('X')", "OFFSET"),
    ("SELECT * FROM merchant_daily FETCH FIRST 5 ROWS ONLY", "LIMIT"),
    # parameters, unicode and whitespace tricks
    ("SELECT * FROM merchant_daily WHERE merchant_id = $1", "parameter"),
    ("SELECT * FROM merchant_daily WHERE merchant_id = ?", "parameter"),
    ("SELECT 1\u200b; DROP TABLE merchant_daily", "U+200B"),
    ("SELECT\u00a01", "U+00A0"),
    ("SELECT 1\x00; DROP TABLE merchant_daily", "U+0000"),
    ("SELECT 'abc' \u202e AS x", "U+202E"),
    ("SELECT\u20281", "U+2028"),
    ("SELECT 1\x0bFROM merchant_daily", "U+000B"),
    ("SELECT 1\uff1b DROP TABLE merchant_daily", "parse"),
    # empty, not SQL, too big
    ("", "empty"),
    ("   \n\t  ", "empty"),
    ("-- only a comment", "empty"),
    ("/* */", "empty"),
    (";", "empty"),
    ("What was the revenue of merchant m-1 last week?", "parse"),
    ("SELECT FROM WHERE", "parse"),
    ("SELECT 1" + " + 1" * (MAX_SQL_BYTES // 4), "longer than"),
    ("SELECT " + "(" * 300 + "1" + ")" * 300, "parse"),
    ("SELECT " + " + ".join(["1"] * (MAX_DEPTH + 1)), "nested too deeply"),
    ("SELECT " + ", ".join(["1"] * (MAX_NODES + 1)), "too large"),
)

# Analytical questions' SQL over the real gold tables.
VALID: tuple[str, ...] = (
    # top merchants by revenue
    "SELECT merchant_id, sum(total_amount) AS revenue FROM gold.merchant_daily "
    "GROUP BY merchant_id ORDER BY revenue DESC LIMIT 10",
    # monthly revenue per currency
    "SELECT date_trunc('month', day) AS month, currency, sum(total_amount) AS revenue "
    "FROM gold.merchant_daily GROUP BY 1, 2 ORDER BY 1, 2",
    # running total per merchant
    "SELECT merchant_id, day, sum(total_amount) OVER (PARTITION BY merchant_id ORDER BY day "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running_total FROM merchant_daily",
    # the top three merchants of each day
    "SELECT day, merchant_id, total_amount, rank() OVER (PARTITION BY day ORDER BY total_amount "
    "DESC) AS place FROM gold.merchant_daily QUALIFY place <= 3 ORDER BY day, place",
    # merchants' and accounts' totals side by side
    "SELECT m.day, m.currency, sum(m.total_amount) AS merchant_total, "
    "max(a.account_total) AS account_total FROM gold.merchant_daily AS m "
    "JOIN (SELECT day, currency, sum(total_amount) AS account_total "
    "FROM gold.account_daily_spend GROUP BY day, currency) AS a "
    "ON a.day = m.day AND a.currency = m.currency GROUP BY m.day, m.currency",
    # a CTE of daily spend, then the biggest spenders
    "WITH spend AS (SELECT account_id, sum(total_amount) AS total FROM gold.account_daily_spend "
    "GROUP BY account_id) SELECT account_id, total FROM spend ORDER BY total DESC LIMIT 20",
    # transaction count buckets
    "SELECT CASE WHEN txn_count < 10 THEN 'small' WHEN txn_count < 100 THEN 'medium' "
    "ELSE 'large' END AS size, count(*) AS merchant_days FROM gold.merchant_daily GROUP BY 1",
    # row counts of two tables
    "SELECT 'merchant_daily' AS tbl, count(*) AS n FROM gold.merchant_daily UNION ALL "
    "SELECT 'account_daily_spend', count(*) FROM gold.account_daily_spend",
    # devices' daily temperature
    "SELECT device_id, date_trunc('day', hour) AS day, avg(avg_temperature_c) AS temperature "
    "FROM gold.device_health_hourly GROUP BY device_id, date_trunc('day', hour)",
    # devices that vibrate too much
    "SELECT device_id, max(max_vibration_mm_s) AS peak FROM gold.device_health_hourly "
    "GROUP BY device_id HAVING max(max_vibration_mm_s) > 10 ORDER BY peak DESC",
    # the 95th percentile of hourly vibration per device
    "SELECT device_id, percentile_cont(0.95) WITHIN GROUP (ORDER BY p95_vibration_mm_s) AS p95 "
    "FROM gold.device_health_hourly GROUP BY device_id",
    # ingestion lag over the last day
    "SELECT event_type, max(lag_p95_s) AS worst_p95 FROM gold.ingestion_kpis "
    "WHERE hour >= now() - INTERVAL 1 DAY GROUP BY event_type",
    # dead-letter ratio per event type
    "SELECT event_type, round(sum(deadletters) / nullif(sum(events) + sum(deadletters), 0), 4) "
    "AS deadletter_ratio FROM gold.ingestion_kpis GROUP BY event_type ORDER BY 2 DESC",
    # the most popular items
    "SELECT item_id, views, purchases, popularity_rank FROM gold.item_popularity "
    "ORDER BY popularity_rank LIMIT 20",
    # items bought together, with the partner's popularity
    "SELECT p.item_a, p.item_b, p.jaccard, i.popularity_score FROM gold.item_pairs AS p "
    "JOIN gold.item_popularity AS i ON i.item_id = p.item_b WHERE p.jaccard > 0.2 "
    "ORDER BY p.jaccard DESC",
    # day-over-day change per merchant
    "SELECT merchant_id, day, total_amount - lag(total_amount) OVER (PARTITION BY merchant_id "
    "ORDER BY day) AS change FROM gold.merchant_daily",
    # how many currencies each merchant takes
    "SELECT merchant_id, count(DISTINCT currency) AS currencies FROM gold.merchant_daily "
    "GROUP BY merchant_id",
    # spread of daily revenue per merchant category
    "SELECT merchant_category, median(total_amount) AS median_day, "
    "stddev_samp(total_amount) AS sd FROM gold.merchant_daily GROUP BY merchant_category",
    # the weekday pattern
    "SELECT dayname(day) AS weekday, extract(dow FROM day) AS dow, sum(txn_count) AS txns "
    "FROM gold.merchant_daily GROUP BY 1, 2 ORDER BY 2",
    # spend per account per month
    "SELECT account_id, strftime(day, '%Y-%m') AS month, sum(total_amount) AS spend "
    "FROM gold.account_daily_spend GROUP BY ALL",
    # accounts that spent in more than one currency
    "SELECT DISTINCT a.account_id FROM gold.account_daily_spend AS a WHERE EXISTS (SELECT 1 "
    "FROM gold.account_daily_spend AS b WHERE b.account_id = a.account_id "
    "AND b.currency <> a.currency)",
    # merchants active on the latest day
    "SELECT merchant_id FROM merchant_daily WHERE day IN (SELECT max(day) FROM merchant_daily)",
    # days with both merchant and account data
    "SELECT day FROM gold.merchant_daily INTERSECT SELECT day FROM gold.account_daily_spend",
    # days with merchant data but no account data
    "SELECT day FROM gold.merchant_daily EXCEPT SELECT day FROM gold.account_daily_spend",
    # ATM share
    "SELECT merchant_id, sum(atm_txns) / sum(txn_count) AS atm_share, "
    "count(*) FILTER (WHERE ecommerce_txns > 0) AS days_online FROM gold.merchant_daily "
    "GROUP BY merchant_id",
    # DuckDB's FROM-first form
    "FROM gold.item_popularity SELECT item_id, views ORDER BY views DESC",
    # everything but a few columns
    "SELECT * EXCLUDE (sessions_a, sessions_b) FROM gold.item_pairs ORDER BY jaccard DESC",
    # merchants in quartiles of revenue
    "SELECT merchant_id, ntile(4) OVER (ORDER BY sum(total_amount)) AS quartile "
    "FROM gold.merchant_daily GROUP BY merchant_id",
    # each account's biggest day
    "SELECT account_id, arg_max(day, total_amount) AS best_day FROM gold.account_daily_spend "
    "GROUP BY account_id",
    # the second page
    "SELECT item_id FROM gold.item_popularity ORDER BY popularity_rank LIMIT 5 OFFSET 5",
    # how many days the data covers
    "SELECT date_diff('day', min(day), max(day)) + 1 AS days FROM gold.merchant_daily",
    # casts
    "SELECT CAST(total_amount AS DOUBLE) / txn_count AS mean_txn, try_cast(merchant_category "
    "AS INTEGER) AS mcc FROM gold.merchant_daily",
    # strings
    "SELECT upper(currency) AS currency, count(*) FROM gold.merchant_daily "
    "WHERE merchant_id LIKE 'm-%' AND lower(currency) <> 'usd' GROUP BY 1",
    # nulls last
    "SELECT item_id, view_to_purchase FROM gold.item_popularity "
    "ORDER BY view_to_purchase DESC NULLS LAST",
    # six-hour buckets
    "SELECT time_bucket(INTERVAL '6 hours', hour) AS bucket, sum(reading_count) AS readings "
    "FROM gold.device_health_hourly GROUP BY 1 ORDER BY 1",
    # subtotals
    "SELECT currency, merchant_category, sum(total_amount) AS revenue "
    "FROM gold.merchant_daily GROUP BY ROLLUP (currency, merchant_category)",
    # columns qualified with the layer
    "SELECT gold.merchant_daily.day, gold.merchant_daily.txn_count FROM gold.merchant_daily",
    # recently seen items
    "SELECT item_id, last_seen FROM gold.item_popularity "
    "WHERE last_seen >= current_date - INTERVAL 7 DAY",
    # coalesce and round
    "SELECT item_id, round(coalesce(view_to_purchase, 0) * 100, 1) AS conversion_pct "
    "FROM gold.item_popularity",
    # a comment the LLM left in
    "-- the busiest hours\nSELECT hour, sum(events) AS events /* all types */ "
    "FROM gold.ingestion_kpis GROUP BY hour ORDER BY events DESC LIMIT 5;",
)


def _limit_of(sql: str) -> int:
    tree = sqlglot.parse_one(sql, read="duckdb")
    limit = tree.args.get("limit")
    assert isinstance(limit, exp.Limit)
    assert isinstance(limit.expression, exp.Literal) and limit.expression.is_int
    return int(limit.expression.name)


def test_the_corpora_are_large_enough() -> None:
    assert len(ADVERSARIAL) >= 60
    assert len({sql for sql, _ in ADVERSARIAL}) == len(ADVERSARIAL)
    assert len(VALID) >= 25


@pytest.mark.parametrize(("sql", "reason"), ADVERSARIAL, ids=lambda v: repr(v)[:48])
def test_adversarial_sql_is_refused_with_a_reason(sql: str, reason: str) -> None:
    with pytest.raises(RefusedSql) as refused:
        check_sql(sql, GOLD_TABLES)
    message = str(refused.value)
    assert reason.lower() in message.lower()
    assert len(message) < 300  # short, and never the whole input back
    assert refused.value.status == 422


@pytest.mark.parametrize("sql", VALID, ids=lambda v: repr(v)[:48])
def test_analytical_sql_is_admitted_with_a_limit(sql: str) -> None:
    gated = check_sql(sql, GOLD_TABLES, max_limit=100)
    assert gated.tables and gated.tables <= set(GOLD_TABLES)
    assert _limit_of(gated.sql) == gated.limit <= 100
    assert "gold." not in gated.sql.lower()  # gold tables run under their plain names
    assert check_sql(gated.sql, GOLD_TABLES, max_limit=100) == gated  # a fixed point


def test_a_missing_limit_is_added_a_larger_one_lowered_a_smaller_one_kept() -> None:
    table = "FROM gold.merchant_daily"
    assert check_sql(f"SELECT * {table}", GOLD_TABLES).limit == 1000
    assert check_sql(f"SELECT * {table} LIMIT 5000", GOLD_TABLES).limit == 1000
    assert check_sql(f"SELECT * {table} LIMIT 7", GOLD_TABLES).sql.endswith("LIMIT 7")
    union = check_sql(f"SELECT day {table} UNION SELECT day {table}", GOLD_TABLES, max_limit=3)
    assert union.sql.endswith("LIMIT 3")
    assert "LIMIT 3" not in union.sql[: -len("LIMIT 3")]  # on the whole union, not one side


def test_gold_tables_are_read_by_plain_quoted_name_with_or_without_the_layer() -> None:
    plain = check_sql("SELECT * FROM merchant_daily", GOLD_TABLES)
    layered = check_sql("SELECT * FROM GOLD.Merchant_Daily", GOLD_TABLES)
    assert plain == layered
    assert plain.sql == 'SELECT * FROM "merchant_daily" LIMIT 1000'
    assert plain.tables == {"merchant_daily"}


def test_allowed_tables_may_be_a_mapping_of_columns_and_name_the_layer() -> None:
    allowed = {"gold.merchant_daily": ["merchant_id", "day"]}
    assert check_sql("SELECT day FROM merchant_daily", allowed).tables == {"merchant_daily"}
    with pytest.raises(RefusedSql, match="not a gold table"):
        check_sql("SELECT * FROM account_daily_spend", allowed)


@pytest.mark.parametrize("name", ["silver.payment_transaction", "a-b", "", "x;y", "1abc"])
def test_an_allowed_name_that_is_not_a_gold_table_name_is_a_programming_error(name: str) -> None:
    with pytest.raises(ValueError, match="not a gold table name"):
        check_sql("SELECT 1", [name])


def test_max_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_limit"):
        check_sql("SELECT 1", GOLD_TABLES, max_limit=0)


def test_comments_never_reach_what_runs() -> None:
    # DuckDB nests block comments as sqlglot does; either way, only the tree is generated back.
    gated = check_sql("SELECT 1 /* /* */ ; DROP TABLE merchant_daily; */ AS one", GOLD_TABLES)
    assert gated.sql == "SELECT 1 AS one LIMIT 1000"
    trailing = check_sql("SELECT 1; -- DROP TABLE merchant_daily", GOLD_TABLES)
    assert trailing.sql == "SELECT 1 LIMIT 1000"


def test_a_cte_is_visible_only_in_its_scope() -> None:
    later = "WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT * FROM b, a"
    assert check_sql(later, GOLD_TABLES).tables == frozenset()
    nested = (
        "SELECT * FROM (WITH t AS (SELECT day FROM merchant_daily) SELECT * FROM t) AS s "
        "JOIN (WITH t AS (SELECT day FROM account_daily_spend) SELECT * FROM t) AS u USING (day)"
    )
    assert check_sql(nested, GOLD_TABLES).tables == {"merchant_daily", "account_daily_spend"}
    with pytest.raises(RefusedSql, match="not a gold table"):
        check_sql("SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t), t", GOLD_TABLES)


def test_a_string_literal_that_looks_like_sql_stays_a_string() -> None:
    gated = check_sql("SELECT 'x''; DROP TABLE merchant_daily; --' AS s", GOLD_TABLES)
    tree = sqlglot.parse_one(gated.sql, read="duckdb")
    assert isinstance(tree, exp.Select)
    assert tree.expressions[0].this.name == "x'; DROP TABLE merchant_daily; --"


_identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)


@given(name=_identifiers, layer=st.sampled_from(["", "gold.", "silver.", "main.", "system."]))
def test_a_table_is_admitted_only_when_it_is_an_allowed_gold_table(name: str, layer: str) -> None:
    try:
        gated = check_sql(f'SELECT * FROM {layer}"{name}"', GOLD_TABLES)
    except RefusedSql:
        assert name not in GOLD_TABLES or layer not in ("", "gold.")
    else:
        assert name in GOLD_TABLES and layer in ("", "gold.")
        assert gated.tables == {name}


_function_names = st.one_of(
    _identifiers,
    st.sampled_from(
        sorted(ANONYMOUS_FUNCTIONS)
        + ["getenv", "current_setting", "read_text", "read_csv", "glob", "query", "repeat"]
        + ["duckdb_settings", "pragma_version", "load_extension", "sum", "upper", "range"]
    ),
)


@given(name=_function_names)
def test_a_function_is_admitted_only_from_the_allow_list(name: str) -> None:
    sql = f"SELECT {name}(merchant_id) FROM gold.merchant_daily"
    try:
        call = sqlglot.parse_one(sql, read="duckdb").expressions[0]
    except sqlglot.errors.ParseError:
        return  # a keyword, not a function name: the gate refuses it as it refuses any text
    listed = call.name.lower() in ANONYMOUS_FUNCTIONS if type(call) is exp.Anonymous else None
    try:
        check_sql(sql, GOLD_TABLES)
    except RefusedSql:
        assert not listed
    else:
        assert listed or type(call) in ALLOWED_NODES


@given(
    limit=st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
    max_limit=st.integers(min_value=1, max_value=10**6),
    union=st.booleans(),
)
def test_what_runs_always_has_a_limit_of_at_most_max_limit(
    limit: int | None, max_limit: int, union: bool
) -> None:
    sql = "SELECT merchant_id FROM gold.merchant_daily"
    if union:
        sql += " UNION ALL SELECT account_id FROM gold.account_daily_spend"
    if limit is not None:
        sql += f" LIMIT {limit}"
    gated = check_sql(sql, GOLD_TABLES, max_limit=max_limit)
    expected = max_limit if limit is None else min(limit, max_limit)
    assert gated.limit == expected == _limit_of(gated.sql)


@given(text=st.text(max_size=200))
def test_any_text_is_either_admitted_as_a_limited_query_or_refused(text: str) -> None:
    try:
        gated = check_sql(text, GOLD_TABLES)
    except RefusedSql as refused:
        assert str(refused)
    else:
        assert isinstance(gated, GatedQuery)
        assert _limit_of(gated.sql) <= 1000


@pytest.mark.parametrize(
    "sql", ["SELECT WHERE 1", "SELECT FROM gold.merchant_daily", "SELECT * FROM (SELECT)"]
)
def test_a_select_without_a_selection_list_is_refused(sql: str) -> None:
    with pytest.raises(RefusedSql, match="must name what it selects"):
        check_sql(sql, GOLD_TABLES)


_fragments = st.sampled_from(
    [
        "SELECT",
        "*",
        "1",
        "FROM",
        "gold.merchant_daily",
        "read_csv('/etc/passwd')",
        ";",
        "DROP TABLE x",
        "/*",
        "*/",
        "--",
        "\n",
        "'",
        '"',
        "(",
        ")",
        "UNION ALL",
        "WITH x AS",
        "COPY",
        "ATTACH",
        "getenv('HOME')",
        "LIMIT",
        "WHERE",
        ",",
    ]
)


@given(parts=st.lists(_fragments, max_size=14))
def test_sql_shaped_noise_never_admits_a_file_read_or_a_second_statement(parts: list[str]) -> None:
    try:
        gated = check_sql(" ".join(parts), GOLD_TABLES)
    except RefusedSql:
        return
    # DuckDB's own parser splits statements; a ';' inside a string literal is data, not a separator.
    assert len(duckdb.extract_statements(gated.sql)) == 1
    # A word like COPY may be a column's name; what must never appear is such a statement or call.
    tree = sqlglot.parse_one(gated.sql, read="duckdb")
    assert isinstance(tree, exp.Query)
    assert not list(tree.find_all(exp.Command, exp.Drop, exp.Copy, exp.Attach, exp.Anonymous))
    calls = {type(node).__name__.lower() for node in tree.find_all(exp.Func)}
    assert not calls & {"readcsv", "getenv"}, calls
    assert _limit_of(gated.sql) <= 1000
