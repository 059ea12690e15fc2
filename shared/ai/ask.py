"""The service of `POST /api/ask`: a question in plain language, answered from the gold tables.

`AskService.ask(question)`:

1. checks the question (hostile input: text, not empty, at most `max_question_chars`);
2. asks the LLM for one DuckDB query, telling it the gold tables (`shared.ai.ask_prompt`);
3. admits the query through the SQL gate (`shared.ai.sql_gate`) and runs it in the locked
   DuckDB (`shared.ai.locked_query`), off the event loop;
4. asks the LLM for a short summary. By default it sees the question, the SQL, the column names
   and the row count, never a value; with `share_rows`, also the first rows, never personal
   data (`shared.ai.ask_rows`). The summary's images, links and raw HTML are stripped
   (`shared.ai.markdown_safety`), so rendering it cannot send data anywhere.

Errors a question can cause are `AskError`s, each with the HTTP status to answer it with. The
LLM port's own errors (`shared.ai.errors`: not configured 503, rate limited 429, ...) pass
through from the first call unchanged; a failed summary leaves the answer without one.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shared.ai.ask_prompt import (
    GoldTable,
    describe_gold,
    extract_sql,
    shortened,
    sql_messages,
    summary_messages,
)
from shared.ai.ask_rows import Json, SharedRows, json_rows, rows_for_llm
from shared.ai.errors import LlmError
from shared.ai.locked_query import (
    DEFAULT_LIMITS,
    GoldTableMissing,
    QueryFailed,
    QueryLimits,
    QueryResult,
    QueryTimeout,
    gold_datasets,
    run_locked,
)
from shared.ai.markdown_safety import strip_links
from shared.ai.port import Llm, Usage, reply_text
from shared.ai.sql_gate import GatedQuery, RefusedSql, check_sql
from shared.pipeline.gold import load_models
from shared.pipeline.lake import Lake

MAX_QUESTION_CHARS = 2000
MAX_SUMMARY_CHARS = 1200
_REPLY_CHARS = 300  # of a reply without SQL, quoted in the error
_SQL_CHARS = 4000  # of refused SQL, kept in the error
_WHITESPACE = frozenset("\t\n\r")
# Bidirectional embeddings, overrides and isolates: they make text read otherwise than it runs.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class AskError(Exception):
    """Base of the errors a question can cause; `status` is the HTTP status to answer with and
    `sql` the query concerned, when there is one (safe to show: the model wrote it)."""

    status: int = 500

    def __init__(self, message: str, sql: str | None = None) -> None:
        super().__init__(message)
        self.sql = sql
        self.calls: tuple[LlmCall, ...] = ()  # the LLM calls made before it (for the ledger)


class BadQuestion(AskError, ValueError):
    """The question is not text, is empty, is too long or holds control characters: 400."""

    status = 400


class NoSqlInReply(AskError):
    """The LLM answered without a query (it may say why: `reply`, stripped of links): 502."""

    status = 502

    def __init__(self, reply: str) -> None:
        quoted = shortened(strip_links(reply.strip()), _REPLY_CHARS)
        super().__init__(
            "the model did not answer with a SQL query" + (f": {quoted}" if quoted else "")
        )
        self.reply = quoted


class SqlRefused(AskError):
    """The SQL gate refused the model's query (`reason` is the gate's message, `sql` the query
    as the model wrote it); nothing ran: 422."""

    status = 422

    def __init__(self, reason: str, sql: str) -> None:
        super().__init__(f"the query was refused: {reason}", shortened(sql, _SQL_CHARS))
        self.reason = reason


class SqlFailed(AskError):
    """DuckDB refused the admitted query (a column that does not exist, out of memory): 422."""

    status = 422


class SqlTimedOut(AskError):
    """The admitted query ran past its time limit and was interrupted: 504."""

    status = 504


class GoldNotBuilt(AskError):
    """A gold table the query reads has not been built yet: 503, not 409. Nothing is wrong with
    the request and no state of the caller's conflicts: the service cannot answer until the
    medallion pipeline has built the table, and the same question succeeds afterwards."""

    status = 503


@dataclass(frozen=True)
class AskPolicy:
    """How questions are answered. `model` is the chat model (None: the port's default,
    `AI_CHAT_MODEL`); `share_rows` lets the summary see the first `max_shared_rows` rows (never
    personal columns); `limits` bound the query (its `max_rows` caps the rows returned)."""

    model: str | None = None
    share_rows: bool = False
    max_shared_rows: int = 50
    max_question_chars: int = MAX_QUESTION_CHARS
    limits: QueryLimits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if self.max_shared_rows < 0 or self.max_question_chars < 1:
            raise ValueError(f"an ask policy's limits must be positive: {self}")


@dataclass(frozen=True)
class LlmCall:
    """One call to the LLM, for the usage ledger: which, where, its tokens and its time."""

    purpose: Literal["sql", "summary"]
    deployment: str
    model: str
    usage: Usage | None
    ms: float


@dataclass(frozen=True)
class AskTimings:
    """Milliseconds: in the LLM (both calls), in DuckDB, and in all."""

    llm_ms: float
    query_ms: float
    total_ms: float


@dataclass(frozen=True)
class AskAnswer:
    """A question's answer. `sql` is what ran (the gate's output); `rows` are JSON values, at
    most the policy's `max_rows` of them (`truncated` when there were more), `row_count` how
    many came back; `tables` and `versions` say which gold tables, at which Delta version.
    `summary` is None when its call failed (`summary_error` says why); `rows_shared` says
    whether the summary saw any row. `calls` are the LLM calls, for the usage ledger."""

    question: str
    sql: str
    tables: tuple[str, ...]
    versions: Mapping[str, int]
    columns: tuple[str, ...]
    rows: tuple[tuple[Json, ...], ...]
    row_count: int
    truncated: bool
    summary: str | None
    summary_error: str | None
    rows_shared: bool
    timings: AskTimings
    calls: tuple[LlmCall, ...]

    @property
    def model(self) -> str:
        return self.calls[0].model

    @property
    def deployment(self) -> str:
        return self.calls[0].deployment

    @property
    def prompt_tokens(self) -> int:
        return sum(call.usage.prompt_tokens for call in self.calls if call.usage)

    @property
    def completion_tokens(self) -> int:
        return sum(call.usage.completion_tokens for call in self.calls if call.usage)

    def to_json(self) -> dict[str, Json]:
        """The answer as a JSON object (what the route sends, before any masking)."""
        return {
            "question": self.question,
            "sql": self.sql,
            "tables": list(self.tables),
            "versions": dict(self.versions),
            "columns": list(self.columns),
            "rows": [list(row) for row in self.rows],
            "row_count": self.row_count,
            "truncated": self.truncated,
            "summary": self.summary,
            "summary_error": self.summary_error,
            "rows_shared": self.rows_shared,
            "model": self.model,
            "deployment": self.deployment,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            },
            "timings": {
                "llm_ms": self.timings.llm_ms,
                "query_ms": self.timings.query_ms,
                "total_ms": self.timings.total_ms,
            },
        }


@dataclass(frozen=True)
class _Ran:
    result: QueryResult
    shared: SharedRows | None
    ms: float


class AskService:
    """Answers questions over the gold tables of `lake` through `llm`. `tables` are the gold
    tables the LLM is told of and the gate admits (default: every gold model, described on
    the first question)."""

    def __init__(
        self,
        llm: Llm,
        lake: Lake,
        tables: tuple[GoldTable, ...] | None = None,
        policy: AskPolicy | None = None,
    ) -> None:
        self._llm = llm
        self._lake = lake
        self._tables = tables
        self.policy = policy or AskPolicy()

    async def ask(self, question: object) -> AskAnswer:
        """Answer `question` (see the module's docstring). Raises an `AskError`, or the port's
        `LlmError` from the first call."""
        started = time.perf_counter()
        text = check_question(question, self.policy.max_question_chars)
        tables = await self._gold_tables()
        limits = self.policy.limits
        reply, sql_call = await self._chat("sql", sql_messages(tables, text, limits.max_rows))
        try:
            sql = extract_sql(reply)
            if sql is None:
                raise NoSqlInReply(reply)
            try:
                # One row past the limit, so that a result cut at the limit says it was.
                gated = check_sql(sql, [t.name for t in tables], max_limit=limits.max_rows + 1)
            except RefusedSql as error:
                raise SqlRefused(str(error), sql) from error
            ran = await asyncio.to_thread(self._run, gated)
        except AskError as error:
            error.calls = (sql_call,)
            raise
        result = ran.result
        messages = summary_messages(
            text, gated.sql, result.columns, len(result.rows), result.truncated, ran.shared
        )
        summary, summary_error = None, None
        calls: tuple[LlmCall, ...] = (sql_call,)
        try:
            written, summary_call = await self._chat("summary", messages)
        except LlmError as error:
            summary_error = str(error)
        else:
            summary = shortened(strip_links(written).strip(), MAX_SUMMARY_CHARS)
            calls = (sql_call, summary_call)
        return AskAnswer(
            question=text,
            sql=gated.sql,
            tables=tuple(sorted(gated.tables)),
            versions=dict(result.versions),
            columns=result.columns,
            rows=json_rows(result.rows),
            row_count=len(result.rows),
            truncated=result.truncated,
            summary=summary,
            summary_error=summary_error,
            rows_shared=ran.shared is not None,
            timings=AskTimings(
                llm_ms=sum(call.ms for call in calls),
                query_ms=ran.ms,
                total_ms=(time.perf_counter() - started) * 1000,
            ),
            calls=calls,
        )

    async def _gold_tables(self) -> tuple[GoldTable, ...]:
        if self._tables is None:
            self._tables = await asyncio.to_thread(lambda: describe_gold(load_models()))
        return self._tables

    async def _chat(
        self, purpose: Literal["sql", "summary"], messages: list[dict[str, str]]
    ) -> tuple[str, LlmCall]:
        """The reply's text, and the call as the usage ledger records it."""
        request: dict[str, Any] = {"messages": messages}
        if self.policy.model is not None:
            request["model"] = self.policy.model
        started = time.perf_counter()
        result = await self._llm.chat(request)
        ms = (time.perf_counter() - started) * 1000
        call = LlmCall(purpose, result.deployment, result.model, result.usage, ms)
        return reply_text(result.body), call

    def _run(self, gated: GatedQuery) -> _Ran:
        """The admitted query in the locked DuckDB, and what of it the summary may see."""
        started = time.perf_counter()
        limits = self.policy.limits
        try:
            sources, versions = gold_datasets(self._lake, gated.tables)
            result = run_locked(gated.sql, sources, limits, versions)
        except GoldTableMissing as error:
            raise GoldNotBuilt(str(error), gated.sql) from error
        except QueryTimeout as error:
            raise SqlTimedOut(str(error), gated.sql) from error
        except QueryFailed as error:
            raise SqlFailed(f"the query failed: {error}", gated.sql) from error
        shared = None
        if self.policy.share_rows:
            shared = rows_for_llm(gated.sql, result, sources, limits, self.policy.max_shared_rows)
        return _Ran(result, shared, (time.perf_counter() - started) * 1000)


def check_question(question: object, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """The question, stripped, if it is text of 1 to `max_chars` characters without control
    characters (tabs and line breaks are fine), lone surrogates or bidirectional overrides;
    else `BadQuestion`."""
    if not isinstance(question, str):
        raise BadQuestion("the question must be text")
    text = question.strip()
    if not text:
        raise BadQuestion("the question is empty")
    if len(text) > max_chars:
        raise BadQuestion(f"the question is longer than {max_chars} characters")
    odd = next((c for c in text if _control(c)), None)
    if odd is not None:
        raise BadQuestion(f"the question holds a control character (U+{ord(odd):04X})")
    return text


def _control(character: str) -> bool:
    if character.isascii():
        return not character.isprintable() and character not in _WHITESPACE
    return character in _BIDI_CONTROLS or unicodedata.category(character) in ("Cc", "Cs")
