"""The Cosmos DB SQL subset: what the Cosmos adapter writes, the devhost and the loopback
server read back as the same query; anything outside the subset is refused, never half-run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedded.documents.model import Condition, InvalidDocument, Query
from embedded.documents.sql import MAX_QUERY_CHARACTERS, parse_query, to_sql

pytestmark = pytest.mark.unit

names = st.text(
    st.characters(codec="utf-8", exclude_characters="/\x00", exclude_categories=("Cs",)),
    min_size=1,
    max_size=12,
)
paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
scalars = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    path = draw(paths)
    op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in", "exists", "starts_with"]))
    if op == "exists":
        return Condition(path, op)
    if op == "in":
        return Condition(path, op, draw(st.lists(scalars, min_size=1, max_size=4)))
    if op == "starts_with":
        return Condition(path, op, draw(st.text(max_size=10)))
    if op in ("=", "!="):
        return Condition(path, op, draw(st.one_of(scalars, st.none(), st.booleans())))
    return Condition(path, op, draw(scalars))


@given(
    st.lists(conditions(), max_size=5),
    st.lists(st.tuples(paths, st.booleans()), max_size=3),
)
def test_what_the_adapter_writes_reads_back_as_the_same_query(
    where: list[Condition], order_by: list[tuple[str, bool]]
) -> None:
    sql, parameters = to_sql(Query(where=where, order_by=order_by, cross_partition=True))
    parsed = parse_query(sql, parameters)
    assert [(c.path, c.op, c.value) for c in parsed.where] == [
        (c.path, c.op, list(c.value) if c.op == "in" else c.value) for c in where
    ]
    assert list(parsed.order_by) == order_by


def test_literals_quotes_and_aliases_as_people_write_them() -> None:
    query = parse_query(
        "select * from root where root.kind = 'it\\'s' and root['q'] = 1 "
        'and root["a b"].c <> -1.5e3 '
        "and root.open = true and root.gone = null and root.n in (1, 2) "
        'and is_defined(root.x) and startswith(root.id, "d") order by root.n desc, root.m'
    )
    assert [(c.path, c.op, c.value) for c in query.where] == [
        ("/kind", "=", "it's"),
        ("/q", "=", 1),
        ("/a b/c", "!=", -1500.0),
        ("/open", "=", True),
        ("/gone", "=", None),
        ("/n", "in", [1, 2]),
        ("/x", "exists", None),
        ("/id", "starts_with", "d"),
    ]
    assert list(query.order_by) == [("/n", True), ("/m", False)]


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "   ",
        "SELECT c.id FROM c",
        "SELECT * FROM c WHERE c.a = 1 OR c.b = 2",
        "SELECT * FROM c WHERE NOT c.a = 1",
        "SELECT * FROM c JOIN t IN c.tags",
        "SELECT * FROM c WHERE UPPER(c.a) = 'X'",
        "SELECT * FROM c WHERE d.a = 1",
        "SELECT * FROM c WHERE c = 1",
        "SELECT * FROM c WHERE c.a = @missing",
        "SELECT * FROM c WHERE c.a < true",
        "SELECT * FROM c WHERE c.a IN ()",
        "SELECT * FROM c WHERE c.a = 'unterminated",
        "SELECT * FROM c WHERE c.a = 1; DROP TABLE documents",
        "SELECT * FROM c ORDER BY",
        "SELECT TOP 5 * FROM c",
        "SELECT * FROM c OFFSET 1 LIMIT 2",
        "SELECT * FROM c WHERE c.a = 'bad \\x escape'",
    ],
)
def test_sql_outside_the_subset_is_refused_saying_so(sql: str) -> None:
    with pytest.raises(InvalidDocument, match="query"):
        parse_query(sql)


@pytest.mark.parametrize(
    "parameters",
    [
        "@a",
        [{"name": "a", "value": 1}],
        [{"value": 1}],
        [{"name": "@a", "value": 1}, {"name": "@a", "value": 2}],
        [7],
    ],
)
def test_malformed_parameters_are_refused(parameters: object) -> None:
    with pytest.raises(InvalidDocument, match="parameter"):
        parse_query("SELECT * FROM c WHERE c.a = @a", parameters)  # type: ignore[arg-type]


def test_an_oversized_query_is_refused() -> None:
    with pytest.raises(InvalidDocument, match="at most"):
        parse_query("SELECT * FROM c WHERE c.a = '" + "x" * MAX_QUERY_CHARACTERS + "'")
