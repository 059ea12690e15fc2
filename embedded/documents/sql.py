"""The Cosmos DB SQL subset the document store speaks, both ways.

`to_sql` writes a `Query` as Cosmos DB SQL with parameters (what the Cosmos DB adapter sends);
`parse_query` reads that subset back into a `Query` (what the devhost's `cosmos_db_input`
binding and the tests' loopback Cosmos DB server need). The subset, and nothing else:

    SELECT * FROM <alias>
      [WHERE <term> [AND <term>]...]
      [ORDER BY <path> [ASC|DESC] [, <path> [ASC|DESC]]...]

    <term>  := <path> (= | != | <> | < | <= | > | >=) <value>
             | <path> IN (<value> [, <value>]...)
             | IS_DEFINED(<path>)
             | STARTSWITH(<path>, <value>)
    <path>  := <alias>.field | <alias>["field"] | either, nested (c.a.b, c["a"]["b"])
    <value> := @parameter | 'text' | "text" | number | true | false | null

Anything outside it (OR, NOT, projections, joins, functions, subqueries) is refused with
InvalidDocument naming what was not understood, never half-run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from embedded.documents.model import Comparison, Condition, InvalidDocument, Json, Query, check_path

MAX_QUERY_CHARACTERS = 256 * 1024  # Cosmos DB's limit on a query's text

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<parameter>@[A-Za-z_][A-Za-z0-9_]*)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<symbol><=|>=|<>|!=|[=<>().,\[\]*])
    )""",
    re.VERBOSE,
)
_COMPARISONS: dict[str, Comparison] = {
    "=": "=",
    "!=": "!=",
    "<>": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}


def check_condition(condition: Condition) -> None:
    """Refuse a term outside the vocabulary every adapter answers the same way: comparisons of
    strings and numbers (null and booleans with = and != only), `in` a non-empty list,
    `starts_with` a string, `exists`."""
    check_path(condition.path)
    value = condition.value
    if condition.op == "exists":
        return
    if condition.op == "in":
        if not isinstance(value, list | tuple) or not value:
            raise InvalidDocument("`in` takes a non-empty list of values")
        for item in value:
            _check_scalar(item)
        return
    if condition.op == "starts_with":
        if not isinstance(value, str):
            raise InvalidDocument("`starts_with` takes a string")
        return
    if condition.op not in _COMPARISONS:
        raise InvalidDocument(f"unknown comparison {condition.op!r}")
    if value is None or isinstance(value, bool):
        if condition.op not in ("=", "!="):
            raise InvalidDocument("null and booleans compare with = or != only")
        return
    _check_scalar(value)


def _check_scalar(value: Json) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidDocument("comparisons take strings and numbers")


def to_sql(query: Query, alias: str = "c") -> tuple[str, list[dict[str, Json]]]:
    """The query as Cosmos DB SQL and its parameters (`[{"name": "@p0", "value": ...}]`)."""
    parameters: list[dict[str, Json]] = []

    def parameter(value: Json) -> str:
        name = f"@p{len(parameters)}"
        parameters.append({"name": name, "value": value})
        return name

    terms = []
    for condition in query.where:
        check_condition(condition)
        path = _sql_path(alias, condition.path)
        if condition.op == "exists":
            terms.append(f"IS_DEFINED({path})")
        elif condition.op == "starts_with":
            terms.append(f"STARTSWITH({path}, {parameter(condition.value)})")
        elif condition.op == "in":
            values = condition.value
            terms.append(f"{path} IN ({', '.join(parameter(v) for v in values)})")
        else:
            terms.append(f"{path} {condition.op} {parameter(condition.value)}")
    sql = f"SELECT * FROM {alias}"
    if terms:
        sql += " WHERE " + " AND ".join(terms)
    if query.order_by:
        order = (f"{_sql_path(alias, p)} {'DESC' if d else 'ASC'}" for p, d in query.order_by)
        sql += " ORDER BY " + ", ".join(order)
    return sql, parameters


def parse_query(sql: str, parameters: Sequence[Mapping[str, Json]] = ()) -> Query:
    """The `Query` a Cosmos DB SQL text of the subset asks for (cross-partition: the caller
    narrows it to a partition key when the request names one)."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidDocument("a query is a non-empty SQL text")
    if len(sql) > MAX_QUERY_CHARACTERS:
        raise InvalidDocument(f"a query is at most {MAX_QUERY_CHARACTERS} characters")
    return _Parser(_tokens(sql), _parameters(parameters)).query()


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(sql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    end = len(sql.rstrip())
    while position < end:
        found = _TOKEN.match(sql, position)
        if found is None or found.end() == position:
            raise InvalidDocument(f"query: cannot read {sql[position : position + 20]!r}")
        kind = found.lastgroup or ""
        tokens.append(_Token(kind, found.group(kind)))
        position = found.end()
    return tokens


def _parameters(parameters: Sequence[Mapping[str, Json]]) -> dict[str, Json]:
    named: dict[str, Json] = {}
    if not isinstance(parameters, Sequence) or isinstance(parameters, str):
        raise InvalidDocument("query parameters are a list of {name, value}")
    for parameter in parameters:
        name = parameter.get("name") if isinstance(parameter, Mapping) else None
        if not isinstance(name, str) or not re.fullmatch(r"@[A-Za-z_][A-Za-z0-9_]*", name):
            raise InvalidDocument(f"a query parameter is {{name: '@name', value}}: {parameter!r}")
        if name in named:
            raise InvalidDocument(f"the query parameter {name} is given twice")
        named[name] = parameter.get("value")
    return named


class _Parser:
    def __init__(self, tokens: list[_Token], parameters: dict[str, Json]) -> None:
        self.tokens = tokens
        self.position = 0
        self.parameters = parameters
        self.alias = ""

    def query(self) -> Query:
        self.keyword("SELECT")
        self.symbol("*")
        self.keyword("FROM")
        self.alias = self.word()
        where: list[Condition] = []
        order_by: list[tuple[str, bool]] = []
        if self.accept_keyword("WHERE"):
            where.append(self.term())
            while self.accept_keyword("AND"):
                where.append(self.term())
        if self.accept_keyword("ORDER"):
            self.keyword("BY")
            order_by.append(self.ordering())
            while self.accept_symbol(","):
                order_by.append(self.ordering())
        if self.position < len(self.tokens):
            raise InvalidDocument(f"query: not in the supported subset from {self.peek().text!r}")
        for condition in where:
            try:
                check_condition(condition)
            except InvalidDocument as error:
                raise InvalidDocument(f"query: {error}") from error
        return Query(where=where, order_by=order_by, cross_partition=True)

    def term(self) -> Condition:
        if self.accept_keyword("IS_DEFINED"):
            self.symbol("(")
            path = self.path()
            self.symbol(")")
            return Condition(path, "exists")
        if self.accept_keyword("STARTSWITH"):
            self.symbol("(")
            path = self.path()
            self.symbol(",")
            value = self.value()
            self.symbol(")")
            return Condition(path, "starts_with", value)
        path = self.path()
        if self.accept_keyword("IN"):
            self.symbol("(")
            values = [self.value()]
            while self.accept_symbol(","):
                values.append(self.value())
            self.symbol(")")
            return Condition(path, "in", values)
        token = self.next()
        if token.kind != "symbol" or token.text not in _COMPARISONS:
            raise InvalidDocument(f"query: expected a comparison, not {token.text!r}")
        return Condition(path, _COMPARISONS[token.text], self.value())

    def ordering(self) -> tuple[str, bool]:
        path = self.path()
        if self.accept_keyword("DESC"):
            return path, True
        self.accept_keyword("ASC")
        return path, False

    def path(self) -> str:
        root = self.word()
        if root != self.alias:
            raise InvalidDocument(f"query: paths start at {self.alias!r}, not {root!r}")
        parts: list[str] = []
        while True:
            if self.accept_symbol("."):
                parts.append(self.word())
            elif self.accept_symbol("["):
                token = self.next()
                if token.kind != "string":
                    raise InvalidDocument('query: a ["field"] path takes a quoted name')
                parts.append(_unquote(token.text))
                self.symbol("]")
            else:
                break
        if not parts:
            raise InvalidDocument(f"query: {root} alone is not a field (write {root}.field)")
        path = "/" + "/".join(parts)
        check_path(path)
        return path

    def value(self) -> Json:
        token = self.next()
        if token.kind == "parameter":
            if token.text not in self.parameters:
                raise InvalidDocument(f"query: the parameter {token.text} has no value")
            return self.parameters[token.text]
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind == "number":
            number = float(token.text)
            return int(token.text) if re.fullmatch(r"-?\d+", token.text) else number
        literals: dict[str, Json] = {"true": True, "false": False, "null": None}
        if token.kind == "word" and token.text.lower() in literals:
            return literals[token.text.lower()]
        raise InvalidDocument(f"query: expected a value, not {token.text!r}")

    # Tokens

    def peek(self) -> _Token:
        if self.position >= len(self.tokens):
            return _Token("end", "the end")
        return self.tokens[self.position]

    def next(self) -> _Token:
        token = self.peek()
        if token.kind == "end":
            raise InvalidDocument("query: it ends too soon")
        self.position += 1
        return token

    def word(self) -> str:
        token = self.next()
        if token.kind != "word":
            raise InvalidDocument(f"query: expected a name, not {token.text!r}")
        return token.text

    def keyword(self, keyword: str) -> None:
        if not self.accept_keyword(keyword):
            raise InvalidDocument(f"query: expected {keyword}, not {self.peek().text!r}")

    def accept_keyword(self, keyword: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.upper() == keyword:
            self.position += 1
            return True
        return False

    def symbol(self, symbol: str) -> None:
        if not self.accept_symbol(symbol):
            raise InvalidDocument(f"query: expected {symbol!r}, not {self.peek().text!r}")

    def accept_symbol(self, symbol: str) -> bool:
        if self.peek().kind == "symbol" and self.peek().text == symbol:
            self.position += 1
            return True
        return False


def _sql_path(alias: str, path: str) -> str:
    return alias + "".join(f"[{json.dumps(part)}]" for part in check_path(path))


def _unquote(text: str) -> str:
    body = text[1:-1]
    if text[0] == "'":
        body = body.replace("\\'", "'").replace('"', '\\"')
    try:
        value = json.loads(f'"{body}"')
    except ValueError as error:
        raise InvalidDocument(f"query: a string with a bad escape: {text[:40]!r}") from error
    return str(value)
