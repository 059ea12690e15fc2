"""The SQL gate of `POST /api/ask`: admits only one read-only query over the gold tables.

The LLM writes the SQL, so it is untrusted input. `check_sql` parses it with sqlglot and admits
exactly one SELECT, or a set operation (UNION, INTERSECT, EXCEPT) of SELECTs, whose every node
is on the allow-list of `shared.ai.sql_vocabulary` (so no statement other than a query, no table
function, no file, setting or catalog access, anywhere, CTEs and subqueries included), and whose
every table is an allowed gold table (or a CTE in scope). It forces a LIMIT at the top.

What runs is never the text that came in: it is the SQL generated back from the checked tree,
without comments, so no comment trick or difference between sqlglot's and DuckDB's tokenizers
can smuggle anything past the gate; the generated text is parsed and checked once more, and must
come back unchanged.

Gold tables are named `gold.<table>` or just `<table>` in the question's SQL; the gate rewrites
them to the plain quoted name, which is what `shared.ai.locked_query` registers them under.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from shared.ai.sql_vocabulary import ALLOWED_NODES, ANONYMOUS_FUNCTIONS

GOLD_LAYER = "gold"
RUN_DIALECT = "duckdb"  # what the locked connection runs
MAX_SQL_BYTES = 20_000
MAX_NODES = 4_000
MAX_DEPTH = 64
DEFAULT_MAX_LIMIT = 1000

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_QUERY_TYPES = (exp.Select, exp.Union, exp.Intersect, exp.Except)
# Whitespace a query may hold; every other control, format (zero-width, bidirectional),
# separator, private-use or unassigned character is refused.
_PLAIN_WHITESPACE = frozenset(" \t\n\r")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
# How a refused construct is named to the user, where sqlglot's class name would not say it.
_CONSTRUCTS = {
    "into": "SELECT INTO",
    "limitoptions": "LIMIT PERCENT or WITH TIES",
    "placeholder": "a parameter",
    "parameter": "a parameter",
    "lambda": "a lambda",
    "tablesample": "USING SAMPLE",
}
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class RefusedSql(ValueError):
    """The SQL is not one read-only query over the allowed gold tables. The message says why,
    and is safe to show the user (it quotes at most a short name from their own SQL)."""

    status = 422


@dataclass(frozen=True)
class GatedQuery:
    """An admitted query: `sql` is what runs (DuckDB dialect, generated from the checked tree,
    with a LIMIT of at most the gate's `max_limit`); `tables` are the gold tables it reads,
    by plain name; `limit` is its effective row limit."""

    sql: str
    tables: frozenset[str]
    limit: int


def check_sql(
    sql: str,
    allowed: Collection[str],
    *,
    max_limit: int = DEFAULT_MAX_LIMIT,
    dialect: str = RUN_DIALECT,
) -> GatedQuery:
    """Admit `sql` (written in `dialect`) if it is one read-only query over `allowed` gold
    tables (names as `table` or `gold.table`; a mapping of table to columns works too), or
    raise `RefusedSql`. A pure function of its arguments: no I/O, no state."""
    if max_limit < 1:
        raise ValueError(f"max_limit must be at least 1, not {max_limit}")
    tables = frozenset(_plain_table_name(name) for name in allowed)
    gated = _gate(sql, tables, max_limit, dialect)
    # The text that runs must mean what was checked: read back, it gates to itself.
    again = _gate(gated.sql, tables, max_limit, RUN_DIALECT)
    if again != gated:
        raise RefusedSql("the query could not be rewritten safely; simplify it")
    return gated


def _plain_table_name(name: str) -> str:
    layer, dot, table = name.rpartition(".")
    if (dot and layer.lower() != GOLD_LAYER) or not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"not a gold table name: {name!r}")
    return table.lower()


def _gate(sql: str, allowed: frozenset[str], max_limit: int, dialect: str) -> GatedQuery:
    _check_text(sql)
    query = _parse_one_query(sql, dialect)
    limit = _force_limit(query, max_limit)
    _check_nodes(query)
    _check_selections(query)
    _check_ctes(query, allowed)
    tables = _resolve_tables(query, allowed)
    try:
        text = query.sql(dialect=RUN_DIALECT, comments=False, unsupported_level=ErrorLevel.RAISE)
    except Exception as error:  # a generator failure refuses, never lets a query through
        raise RefusedSql("the query uses something that cannot run here") from error
    return GatedQuery(text, tables, limit)


def _check_text(sql: object) -> None:
    if not isinstance(sql, str):
        raise RefusedSql("the SQL must be text")
    if not sql.strip():
        raise RefusedSql("the SQL is empty")
    if len(sql) > MAX_SQL_BYTES or len(sql.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES:
        raise RefusedSql(f"the SQL is longer than {MAX_SQL_BYTES} bytes")
    if sql.isascii():
        refused = _ASCII_CONTROL.search(sql)
        odd = refused.group() if refused else None
    else:
        odd = next((c for c in sql if _unusual(c)), None)
    if odd is not None:
        raise RefusedSql(
            f"the SQL holds a control, invisible or unusual space character (U+{ord(odd):04X})"
        )


def _unusual(character: str) -> bool:
    return (
        character not in _PLAIN_WHITESPACE
        and unicodedata.category(character) in _REFUSED_CATEGORIES
    )


def _parse_one_query(sql: str, dialect: str) -> exp.Query:
    try:
        statements = sqlglot.parse(sql, read=dialect)
    except Exception as error:  # ParseError, TokenError, RecursionError: all refuse
        raise RefusedSql("the SQL does not parse as one query") from error
    present = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
    if not present:
        raise RefusedSql("the SQL is empty")
    if len(present) > 1:
        raise RefusedSql(f"only one statement may run, not {len(present)}")
    query = present[0]
    if type(query) not in _QUERY_TYPES:
        raise RefusedSql(f"only a SELECT query may run, not {_statement(query)}")
    assert isinstance(query, exp.Query)  # narrowed by the exact type check above
    return query


def _statement(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return _short(node.name.upper()) or "that command"
    if isinstance(node, (exp.Column, exp.Identifier)):
        return _short(node.name.upper())  # a keyword sqlglot takes for a name: CHECKPOINT
    if isinstance(node, (exp.Subquery, exp.Paren)):
        return "a query in parentheses"
    return node.key.upper()


def _short(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_selections(query: exp.Query) -> None:
    """sqlglot reads `SELECT WHERE 1` as a query; DuckDB does not, so it is refused here."""
    if any(not select.expressions for select in query.find_all(exp.Select)):
        raise RefusedSql("every SELECT must name what it selects")


def _check_nodes(query: exp.Query) -> None:
    """Every node allowed, and the tree within the size and depth limits."""
    stack: list[tuple[exp.Expr, int]] = [(query, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise RefusedSql(f"the query is too large (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise RefusedSql(f"the query is nested too deeply (more than {MAX_DEPTH} levels)")
        _check_node(node)
        stack.extend((child, depth + 1) for child in node.iter_expressions())


def _check_node(node: exp.Expr) -> None:
    kind = type(node)
    if kind is exp.Anonymous:
        name = node.name.lower()
        if name not in ANONYMOUS_FUNCTIONS:
            raise RefusedSql(f"the function {_short(name)}() is not allowed")
    elif kind not in ALLOWED_NODES:
        if isinstance(node, exp.Func):
            raise RefusedSql(f"the function {node.sql_name().lower()}() is not allowed")
        what = _CONSTRUCTS.get(node.key, node.key.upper())
        raise RefusedSql(f"{what} is not allowed: only a read-only SELECT may run")


def _check_ctes(query: exp.Query, allowed: frozenset[str]) -> None:
    for with_ in query.find_all(exp.With):
        if with_.args.get("recursive"):
            raise RefusedSql("recursive CTEs are not allowed")
        for cte in with_.expressions:
            if type(cte.this) not in _QUERY_TYPES:
                raise RefusedSql(f"the CTE {_short(cte.alias)} must be a SELECT")
            if cte.alias.lower() in allowed:
                raise RefusedSql(f"a CTE may not be named like the gold table {cte.alias}")


def _resolve_tables(query: exp.Query, allowed: frozenset[str]) -> frozenset[str]:
    """Check every table read and rewrite each gold table to its plain quoted name."""
    read: set[str] = set()
    for table in list(query.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise RefusedSql(
                "table functions (read_csv, range, ...) are not allowed: read the gold tables "
                "by name"
            )
        name, layer = table.name.lower(), table.db.lower()
        if table.catalog or (layer and layer != GOLD_LAYER):
            qualified = ".".join(p for p in (table.catalog, table.db, table.name) if p)
            raise RefusedSql(f"only gold tables may be read, not {_short(qualified)}")
        if not layer and name in _ctes_in_scope(table):
            continue
        if name not in allowed:
            raise RefusedSql(
                f"{_short(table.name)} is not a gold table this question may read; "
                f"the tables are: {_listed(allowed)}"
            )
        read.add(name)
        table.set("this", exp.to_identifier(name, quoted=True))
        table.set("db", None)
    for column in query.find_all(exp.Column):
        if column.db.lower() == GOLD_LAYER and not column.catalog:
            column.set("db", None)  # gold.table.column reads table.column
    return frozenset(read)


def _listed(names: frozenset[str], most: int = 12) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:most]) or "none"
    return shown + (f" and {len(ordered) - most} more" if len(ordered) > most else "")


def _ctes_in_scope(table: exp.Table) -> set[str]:
    """The CTE names `table` may refer to: those of every enclosing WITH, where a CTE sees
    only the CTEs defined before it (recursive CTEs are refused)."""
    names: set[str] = set()
    child: exp.Expr = table
    parent = table.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            for cte in parent.expressions:
                if cte is child:
                    break
                names.add(cte.alias.lower())
            owner = parent.parent  # the query that owns this WITH: its other CTEs are later
            if owner is None:
                break
            child, parent = owner, owner.parent
            continue
        with_ = parent.args.get("with_")
        if isinstance(with_, exp.With) and with_ is not child:
            names.update(cte.alias.lower() for cte in with_.expressions)
        child, parent = parent, parent.parent
    return names


def _force_limit(query: exp.Query, max_limit: int) -> int:
    """The top-level LIMIT: added when missing, lowered to `max_limit` when larger."""
    offset = query.args.get("offset")
    if offset is not None:
        _whole_number(offset.expression, "OFFSET")
    limit = query.args.get("limit")
    if limit is None:
        query.set("limit", exp.Limit(expression=exp.Literal.number(max_limit)))
        return max_limit
    if not isinstance(limit, exp.Limit) or {k for k, v in limit.args.items() if v} - {"expression"}:
        raise RefusedSql("only LIMIT with a whole number of rows is allowed")
    effective = min(_whole_number(limit.expression, "LIMIT"), max_limit)
    limit.set("expression", exp.Literal.number(effective))
    return effective


def _whole_number(node: exp.Expr | None, clause: str) -> int:
    if not (isinstance(node, exp.Literal) and node.is_int):
        raise RefusedSql(f"{clause} must be a whole number of rows")
    return int(node.name)
