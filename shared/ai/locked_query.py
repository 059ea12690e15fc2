"""Runs a gated question's SQL in a locked DuckDB: the second wall behind the SQL gate.

Each query gets a fresh in-memory connection, configured before any data is in it: no file or
network access (`enable_external_access=false`), no extension installed or loaded
(`autoinstall_known_extensions`, `autoload_known_extensions`, `allow_community_extensions`,
`allow_unsigned_extensions` all false), no persistent secrets, no scans of Python variables
(`python_enable_replacements=false`), no spilling to disk (`temp_directory=''`, so
`memory_limit` is a hard limit), `threads` fixed, and the time zone UTC. Only then are the gold
tables the query reads registered, as Arrow datasets (DuckDB scans Arrow in memory, which
external access does not govern; deltalake reads the files). Last, `lock_configuration=true`, so
the query cannot change any of it. A timer thread calls `interrupt()` when the wall-clock limit
passes.

Even if the gate let something through, this connection refuses `read_csv('/etc/passwd')`,
`COPY ... TO`, `ATTACH`, `INSTALL`, `LOAD` and `SET` (the tests prove each).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from shared.ai.sql_gate import GOLD_LAYER, GatedQuery
from shared.pipeline.lake import Lake

ArrowSource: TypeAlias = pa.Table | pads.Dataset

# Every setting here exists in the DuckDB that requirements.txt pins (an unknown one fails the
# connect, so an upgrade that drops one fails closed, and the tests say which).
LOCKDOWN: Mapping[str, str | bool] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
    "temp_directory": "",
}
_MESSAGE_CHARS = 300


class LockedQueryError(RuntimeError):
    """Base of the errors of running a gated query; `status` is the HTTP status to answer."""

    status: int = 500


class QueryTimeout(LockedQueryError):
    """The query ran past its wall-clock limit and was interrupted."""

    status = 504


class QueryFailed(LockedQueryError):
    """DuckDB refused or failed the query (a binder error, a permission error, out of memory);
    the message is DuckDB's first line, shortened."""

    status = 422


class GoldTableMissing(LockedQueryError):
    """A gold table the query reads has not been built yet."""

    status = 503


@dataclass(frozen=True)
class QueryLimits:
    """What one query may use: wall-clock seconds, DuckDB memory and threads, rows returned."""

    timeout_s: float = 10.0
    memory_limit: str = "512MB"
    threads: int = 2
    max_rows: int = 1000

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.threads < 1 or self.max_rows < 0:
            raise ValueError(f"limits must be positive: {self}")


DEFAULT_LIMITS = QueryLimits()


@dataclass(frozen=True)
class QueryResult:
    """The query's columns and rows (at most `max_rows`; `truncated` when there were more),
    how long the locked connection took to set up and the query to run, and the Delta version
    of each gold table read."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    setup_ms: float
    run_ms: float
    versions: Mapping[str, int] = field(default_factory=dict)


def open_locked(
    sources: Mapping[str, ArrowSource], limits: QueryLimits = DEFAULT_LIMITS
) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection, locked down, with `sources` registered by name and its
    configuration locked. The caller closes it."""
    config: dict[str, str | bool | int | float | list[str]] = {
        **LOCKDOWN,
        "memory_limit": limits.memory_limit,
        "threads": limits.threads,
    }
    connection = duckdb.connect(":memory:", config=config)
    try:
        connection.execute("SET TimeZone = 'UTC'")  # the lake's times are UTC (ICU is built in)
        for name, source in sources.items():
            connection.register(name, source)
        connection.execute("SET lock_configuration = true")  # last: nothing changes after it
    except BaseException:
        connection.close()
        raise
    return connection


def run_locked(
    sql: str,
    sources: Mapping[str, ArrowSource],
    limits: QueryLimits = DEFAULT_LIMITS,
    versions: Mapping[str, int] | None = None,
) -> QueryResult:
    """Run `sql` (the gate's output) over `sources` in a locked connection, within `limits`.
    Raises `QueryTimeout` past the time limit and `QueryFailed` on a DuckDB error."""
    started = time.perf_counter()
    connection = open_locked(sources, limits)
    try:
        setup_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        columns, rows = _execute(connection, sql, limits)
        run_ms = (time.perf_counter() - started) * 1000
    finally:
        connection.close()
    truncated = len(rows) > limits.max_rows
    return QueryResult(
        columns=columns,
        rows=tuple(tuple(row) for row in rows[: limits.max_rows]),
        truncated=truncated,
        setup_ms=setup_ms,
        run_ms=run_ms,
        versions=dict(versions or {}),
    )


def run_gated(query: GatedQuery, lake: Lake, limits: QueryLimits = DEFAULT_LIMITS) -> QueryResult:
    """Run an admitted query over the current version of the gold tables it reads."""
    datasets, versions = gold_datasets(lake, query.tables)
    return run_locked(query.sql, datasets, limits, versions)


def gold_datasets(
    lake: Lake, tables: Iterable[str]
) -> tuple[dict[str, pads.Dataset], dict[str, int]]:
    """Each gold table as an Arrow dataset (deltalake reads its files), and its Delta version.
    Raises `GoldTableMissing` naming the tables not built yet."""
    datasets: dict[str, pads.Dataset] = {}
    versions: dict[str, int] = {}
    missing: list[str] = []
    for name in sorted(tables):
        delta = lake.open(GOLD_LAYER, name)
        if delta is None:
            missing.append(name)
            continue
        datasets[name] = delta.to_pyarrow_dataset()
        versions[name] = delta.version()
    if missing:
        tables_word = "tables" if len(missing) > 1 else "table"
        raise GoldTableMissing(
            f"the lake has no gold {tables_word} {', '.join(missing)} yet: "
            "run the medallion pipeline first"
        )
    return datasets, versions


def _execute(
    connection: duckdb.DuckDBPyConnection, sql: str, limits: QueryLimits
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Columns and at most `max_rows + 1` rows, interrupted after `timeout_s` seconds."""
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        try:
            connection.interrupt()
        except duckdb.Error:  # the query ended and the connection closed meanwhile
            pass

    timer = threading.Timer(limits.timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        cursor = connection.execute(sql)
        columns = tuple(str(column[0]) for column in cursor.description or ())
        rows: list[tuple[Any, ...]] = cursor.fetchmany(limits.max_rows + 1)
    except duckdb.InterruptException as error:
        raise QueryTimeout(f"the query ran longer than {limits.timeout_s:g} s") from error
    except duckdb.OutOfMemoryException as error:
        raise QueryFailed(
            f"the query needs more than the {limits.memory_limit} of memory it may use"
        ) from error
    except duckdb.Error as error:
        if fired.is_set():
            raise QueryTimeout(f"the query ran longer than {limits.timeout_s:g} s") from error
        raise QueryFailed(_first_line(error)) from error
    finally:
        timer.cancel()
        timer.join()
    return columns, rows


def _first_line(error: duckdb.Error) -> str:
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 1] + "…"
