"""Gold SQL as written (DuckDB dialect) and as each engine runs it: tables resolved, transpiled."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

SOURCE_DIALECT = "duckdb"


class ModelSqlError(ValueError):
    """A model's SQL does not parse, is not one query, or reads a table it did not declare."""


def _parse(sql: str) -> exp.Query:
    try:
        statements = sqlglot.parse(sql, read=SOURCE_DIALECT)
    except ParseError as error:
        raise ModelSqlError(f"does not parse: {error}") from error
    queries = [statement for statement in statements if statement is not None]
    if len(queries) != 1 or not isinstance(queries[0], exp.Query):
        raise ModelSqlError("must be exactly one SELECT query")
    return queries[0]


def referenced_tables(sql: str) -> frozenset[str]:
    """The `layer.table` names a query reads (CTE names, which have no layer, are not tables)."""
    return frozenset(
        f"{table.db}.{table.name}" for table in _parse(sql).find_all(exp.Table) if table.db
    )


Columns = Mapping[str, str]


def _empty(columns: Columns) -> exp.Expression:
    """No rows, with the given columns: stands in for an input that does not exist yet."""
    if not columns:
        raise ModelSqlError("an empty input needs at least one column")
    select = ", ".join(
        f"CAST(NULL AS {kind}) AS {exp.to_identifier(name, quoted=True).sql(SOURCE_DIALECT)}"
        for name, kind in columns.items()
    )
    return _parse(f"SELECT {select} WHERE 1 = 0").subquery()


def _resolve(
    sql: str, replace: Callable[[str], exp.Expression], empty: Mapping[str, Columns]
) -> exp.Query:
    tree = _parse(sql)
    for table in list(tree.find_all(exp.Table)):
        if not table.db:
            continue
        name = f"{table.db}.{table.name}"
        alias = exp.TableAlias(this=exp.to_identifier(table.alias or table.name))
        resolved = _empty(empty[name]) if name in empty else replace(name)
        resolved.set("alias", alias)
        table.replace(resolved)
    return tree


def duckdb_sql(
    sql: str, relations: Mapping[str, str], empty: Mapping[str, Columns] | None = None
) -> str:
    """The query with each `layer.table` replaced by the name it is registered under in DuckDB."""

    def replace(name: str) -> exp.Expression:
        if name not in relations:
            raise ModelSqlError(f"reads {name}, which is not one of its inputs")
        return exp.Table(this=exp.to_identifier(relations[name], quoted=True))

    return _resolve(sql, replace, empty or {}).sql(dialect=SOURCE_DIALECT)


def spark_sql(
    sql: str,
    inputs: Mapping[str, str],
    empty: Mapping[str, Columns] | None = None,
    *,
    source: str | None = "delta",
) -> str:
    """The query in Spark SQL, each `layer.table` read by path as delta.`<uri>` (or, with
    `source=None`, by the name `inputs` gives it, such as a temporary view)."""

    def replace(name: str) -> exp.Expression:
        if name not in inputs:
            raise ModelSqlError(f"reads {name}, which is not one of its inputs")
        db = exp.to_identifier(source) if source else None
        return exp.Table(this=exp.to_identifier(inputs[name], quoted=True), db=db)

    tree = _resolve(sql, replace, empty or {}).transform(_exact_percentiles)
    return tree.sql(dialect="spark")


def _exact_percentiles(node: exp.Expression) -> exp.Expression:
    """`percentile_cont(q) WITHIN GROUP (ORDER BY x)` as Spark's exact `percentile(x, q)`:
    sqlglot writes `PERCENTILE_APPROX`, whose answers differ from DuckDB's exact ones."""
    if not (isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont)):
        return node
    order = node.expression
    keys = order.expressions if isinstance(order, exp.Order) else []
    if len(keys) != 1 or keys[0].args.get("desc"):
        raise ModelSqlError("percentile_cont takes one ascending ORDER BY expression")
    return exp.Anonymous(this="PERCENTILE", expressions=[keys[0].this, node.this.this])


def spark_statements(
    sql: str, inputs: Mapping[str, str], output: str, empty: Mapping[str, Columns] | None = None
) -> list[str]:
    """The Spark statements that replace the `output` Delta table with the query's result."""
    target = output.replace("`", "``")
    query = spark_sql(sql, inputs, empty)
    return [f"CREATE OR REPLACE TABLE delta.`{target}` USING DELTA AS\n{query}"]


def encode_job(model: str, statements: list[str]) -> str:
    """The runner's single argument: base64 JSON, so no shell or form ever re-quotes the SQL."""
    payload = json.dumps({"model": model, "statements": statements}).encode()
    return base64.b64encode(payload).decode("ascii")


def decode_job(argument: str) -> tuple[str, list[str]]:
    """The inverse of `encode_job`; raises ModelSqlError for anything else."""
    try:
        payload = json.loads(base64.b64decode(argument, validate=True))
        model, statements = payload["model"], payload["statements"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelSqlError(f"not an encoded job: {error}") from error
    if not isinstance(model, str) or not all(isinstance(s, str) for s in statements):
        raise ModelSqlError("not an encoded job: model and statements must be text")
    return model, list(statements)
