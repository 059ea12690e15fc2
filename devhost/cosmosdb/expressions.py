"""Binding expressions in cosmosDB input bindings: `{id}` and `{Query.id}`, resolved from the
trigger's binding data as the Functions host resolves them.

An HTTP trigger's binding data is the properties of a JSON object body, then the query
parameters (`code` excepted), then the route parameters, each overriding the one before, plus
`Query` and `Headers` as objects; names match case-insensitively, and `{a.b}` goes into an
object. A blob trigger's is its path parameters. In `sqlQuery`, as the Cosmos DB extension
does, each `{name}` becomes a query parameter `@name` bound to the value, never text spliced
into the SQL. `{{` and `}}` stand for literal braces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from devhost.blob.output import trigger_binding_data

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*(?:\.[A-Za-z_$][A-Za-z0-9_$-]*)*$")


class BindingExpressionError(ValueError):
    """An expression that names no binding data, or is malformed; the message says which."""


def binding_data(trigger_value: Any) -> dict[str, Any]:
    """The binding data a trigger value gives to expressions (empty for other triggers)."""
    data: dict[str, Any] = dict(trigger_binding_data.get() or {})
    if isinstance(trigger_value, func.HttpRequest):
        try:
            body = json.loads(trigger_value.get_body() or b"null")
        except ValueError:
            body = None
        if isinstance(body, dict):
            data.update(body)
        params = dict(trigger_value.params)
        data.update({k: v for k, v in params.items() if k.lower() != "code"})
        data.update(trigger_value.route_params)
        data["Query"] = params
        data["Headers"] = dict(trigger_value.headers)
    return data


def _lookup(data: Mapping[str, Any], name: str, template: str) -> Any:
    value: Any = data
    parts = name.split(".")
    for depth, part in enumerate(parts):
        inside = ".".join(parts[:depth]) or "the trigger's binding data"
        if not isinstance(value, Mapping):
            raise BindingExpressionError(
                f"{template!r}: no value for {{{name}}}: {inside} is not an object"
            )
        if part in value:
            value = value[part]
            continue
        folded = part.casefold()
        matches = [key for key in value if isinstance(key, str) and key.casefold() == folded]
        if not matches:
            known = ", ".join(sorted(map(str, value))[:20]) or "nothing"
            raise BindingExpressionError(
                f"{template!r}: no value for {{{name}}}: {inside} has no {part!r} (it has {known})"
            )
        value = value[matches[0]]
    return value


def _tokens(template: str) -> list[tuple[str, str]]:
    """(kind, text) pieces: ("text", literal) or ("name", expression)."""
    pieces: list[tuple[str, str]] = []
    position = 0
    for match in _TOKEN.finditer(template):
        pieces.append(("text", template[position : match.start()]))
        position = match.end()
        token = match.group()
        if token in ("{{", "}}"):
            pieces.append(("text", token[0]))
        elif match.group(1) is None:
            raise BindingExpressionError(
                f"{template!r}: unbalanced {token!r} at position {match.start() + 1} "
                "(write {{ or }} for a literal brace)"
            )
        else:
            name = match.group(1).strip()
            if not _NAME.match(name):
                raise BindingExpressionError(f"{template!r}: {{{name}}} is not a binding name")
            pieces.append(("name", name))
    pieces.append(("text", template[position:]))
    return [piece for piece in pieces if piece != ("text", "")]


def _text(value: Any, name: str, template: str) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    raise BindingExpressionError(f"{template!r}: {{{name}}} is an object or a list, not a value")


def resolve(template: str, data: Mapping[str, Any]) -> str:
    """The template with every `{name}` replaced by its value's text."""
    return "".join(
        text if kind == "text" else _text(_lookup(data, text, template), text, template)
        for kind, text in _tokens(template)
    )


def query_with_parameters(sql: str, data: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The SQL with each `{name}` replaced by a parameter, and the parameters' values."""
    names: dict[str, str] = {}
    parameters: list[dict[str, Any]] = []
    pieces = []
    for kind, text in _tokens(sql):
        if kind == "text":
            pieces.append(text)
            continue
        parameter = names.get(text)
        if parameter is None:
            parameter = "@" + re.sub(r"[^A-Za-z0-9_]", "_", text)
            while any(p["name"] == parameter for p in parameters):
                parameter += "_"
            names[text] = parameter
            parameters.append({"name": parameter, "value": _lookup(data, text, sql)})
        pieces.append(parameter)
    return "".join(pieces), parameters
