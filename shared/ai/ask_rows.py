"""The rows of a question's answer: as JSON values, and the part the LLM may see.

Personal data never goes to the LLM. The personal columns are the contracts' PII fields and
what they keep of a value (`shared.identity.masking.personal_fields`: `card_number`, a
pseudonym, and `card_last4`). Rows are shared only when the caller's setting allows it, and
then:

- a column named like a personal one is always left out;
- when a table the query read holds a personal column, the query runs once more with every
  personal column read as NULL, and the other columns are shared only if they come out the
  same (as a multiset of rows), taken from that second run: what the LLM sees is then computed
  with no personal value at all, whatever the SQL did with one (an alias, `upper(card_number)`,
  `count(DISTINCT card_number)`, a whole-row value, `COLUMNS('card.*')`). Otherwise no row is
  shared.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from shared.ai.locked_query import LockedQueryError, QueryLimits, QueryResult, run_locked
from shared.events.contracts import CONTRACTS
from shared.identity.masking import personal_fields

Json: TypeAlias = None | bool | int | float | str | list["Json"] | dict[str, "Json"]

PERSONAL_COLUMNS: frozenset[str] = frozenset(
    name.lower() for contract in CONTRACTS for name in personal_fields(contract)
)


def json_value(value: Any) -> Json:
    """A DuckDB value as JSON: decimals as exact strings, times in ISO 8601 (durations as
    `PT<seconds>S`), non-finite floats as strings, bytes in base64, lists, structs and maps
    as arrays and objects (keys as strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"PT{value.total_seconds():g}S"
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(item) for item in value]
    return str(value)


def json_rows(rows: Sequence[Sequence[Any]]) -> tuple[tuple[Json, ...], ...]:
    return tuple(tuple(json_value(value) for value in row) for row in rows)


@dataclass(frozen=True)
class SharedRows:
    """What the LLM may see of a result: columns and at most the first N rows, JSON values."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Json, ...], ...]


def rows_for_llm(
    sql: str,
    result: QueryResult,
    sources: Mapping[str, pads.Dataset],
    limits: QueryLimits,
    most: int,
) -> SharedRows | None:
    """At most `most` rows of `result` (of `sql` over `sources`) without personal data, or
    None when they cannot be shared without it (see the module's docstring). Blocking: it may
    run the query again."""
    keep = [i for i, name in enumerate(result.columns) if name.lower() not in PERSONAL_COLUMNS]
    if not keep:
        return None
    rows = result.rows
    if any(_personal(source.schema) for source in sources.values()):
        nulled = {name: _personal_as_null(source) for name, source in sources.items()}
        try:
            again = run_locked(sql, nulled, limits)
        except LockedQueryError:  # it ran out of time, or memory
            return None
        if (
            again.columns != result.columns
            or again.truncated != result.truncated
            or _unordered(_kept(again.rows, keep)) != _unordered(_kept(result.rows, keep))
        ):
            return None
        rows = again.rows  # the same values, and an order that owes nothing to personal data
    return SharedRows(
        columns=tuple(result.columns[i] for i in keep),
        rows=json_rows(_kept(rows[:most], keep)),
    )


def _personal(schema: pa.Schema) -> list[str]:
    return [name for name in schema.names if name.lower() in PERSONAL_COLUMNS]


def _personal_as_null(source: pads.Dataset) -> pads.Dataset:
    """The dataset with its personal columns read as NULLs of their type (never read at all)."""
    if not _personal(source.schema):
        return source
    columns = {
        field.name: pc.scalar(None).cast(field.type)
        if field.name.lower() in PERSONAL_COLUMNS
        else pc.field(field.name)
        for field in source.schema
    }
    # DuckDB scans a projecting Scanner as it does a Dataset, lazily and as often as the query
    # reads the table; `run_locked`'s sources are typed as Datasets and Tables only.
    return cast(pads.Dataset, source.scanner(columns=columns))


def _kept(rows: Sequence[Sequence[Any]], keep: Sequence[int]) -> list[list[Any]]:
    return [[row[i] for i in keep] for row in rows]


def _unordered(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Rows compared without their order (a query without ORDER BY has none)."""
    return sorted(repr(row) for row in rows)
