"""ASP.NET Core route templates, as the Functions host matches them.

Supports literal segments, `{name}`, optional `{name?}`, defaults `{name=value}`,
catch-all `{*rest}`, and the inline constraints int, long, bool, guid, alpha, double,
float, decimal, datetime, minlength(n), maxlength(n), length(n) and length(a,b),
min(n), max(n), range(a,b), and regex(...).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

_PARAMETER = re.compile(r"^\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>.*)\}$")


class RouteTemplateError(ValueError):
    """A route template that cannot be parsed."""


Constraint = Callable[[str], bool]


def _is_int(bits: int) -> Constraint:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def check(value: str) -> bool:
        if not re.fullmatch(r"[+-]?\d+", value):
            return False
        return low <= int(value) <= high

    return check


def _is_bool(value: str) -> bool:
    return value.lower() in ("true", "false")


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value.strip("{}()"))
    except ValueError:
        return False
    return True


def _is_number(value: str) -> bool:
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value):
        return False
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _numbers(argument: str, count: int, constraint: str) -> list[int]:
    parts = [p.strip() for p in argument.split(",")]
    if len(parts) != count or not all(re.fullmatch(r"-?\d+", p) for p in parts):
        raise RouteTemplateError(f"constraint {constraint}({argument}) needs {count} integer(s)")
    return [int(p) for p in parts]


def _constraint(text: str) -> Constraint:
    match = re.fullmatch(r"(?P<kind>[a-zA-Z]+)(\((?P<arg>.*)\))?", text, re.DOTALL)
    if match is None:
        raise RouteTemplateError(f"unknown route constraint {text!r}")
    kind, argument = match.group("kind").lower(), match.group("arg")
    simple: dict[str, Constraint] = {
        "int": _is_int(32),
        "long": _is_int(64),
        "bool": _is_bool,
        "guid": _is_guid,
        "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]+", v)),
        "double": _is_number,
        "float": _is_number,
        "decimal": _is_number,
        "datetime": _is_datetime,
    }
    if kind in simple and argument is None:
        return simple[kind]
    if argument is None:
        raise RouteTemplateError(f"unknown route constraint {text!r}")
    if kind == "regex":
        try:
            pattern = re.compile(argument.replace("{{", "{").replace("}}", "}"), re.IGNORECASE)
        except re.error as error:
            raise RouteTemplateError(f"constraint regex({argument}): {error}") from error
        return lambda v: pattern.search(v) is not None
    if kind == "minlength":
        (n,) = _numbers(argument, 1, kind)
        return lambda v: len(v) >= n
    if kind == "maxlength":
        (n,) = _numbers(argument, 1, kind)
        return lambda v: len(v) <= n
    if kind == "length":
        if "," in argument:
            low, high = _numbers(argument, 2, kind)
            return lambda v: low <= len(v) <= high
        (n,) = _numbers(argument, 1, kind)
        return lambda v: len(v) == n
    if kind in ("min", "max"):
        (n,) = _numbers(argument, 1, kind)
        is_long = _is_int(64)
        if kind == "min":
            return lambda v: is_long(v) and int(v) >= n
        return lambda v: is_long(v) and int(v) <= n
    if kind == "range":
        low, high = _numbers(argument, 2, kind)
        is_long = _is_int(64)
        return lambda v: is_long(v) and low <= int(v) <= high
    raise RouteTemplateError(f"unknown route constraint {text!r}")


@dataclass(frozen=True)
class Segment:
    literal: str | None = None
    name: str | None = None
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: tuple[Constraint, ...] = field(default_factory=tuple)

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


def _split_constraints(rest: str) -> tuple[list[str], str | None, bool]:
    """Split `:int:min(1)=5?` into constraints, a default and the optional flag."""
    optional = rest.endswith("?")
    if optional:
        rest = rest[:-1]
    default = None
    constraints: list[str] = []
    depth, current, index = 0, "", 0
    if rest and rest[0] not in ":=":
        raise RouteTemplateError(f"unexpected {rest!r} in a route parameter")
    while index < len(rest):
        char = rest[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if depth == 0 and char == ":":
            if current:
                constraints.append(current)
            current = ""
        elif depth == 0 and char == "=":
            if current:
                constraints.append(current)
            default, current = rest[index + 1 :], ""
            break
        else:
            current += char
        index += 1
    if current:
        constraints.append(current)
    return constraints, default, optional


def _segment(text: str, template: str) -> Segment:
    if "{" not in text and "}" not in text:
        if not text:
            raise RouteTemplateError(f"route {template!r} has an empty segment")
        return Segment(literal=text)
    match = _PARAMETER.match(text)
    if match is None:
        raise RouteTemplateError(
            f"route {template!r}: segment {text!r} must be a literal or a single {{parameter}}"
        )
    names, default, optional = _split_constraints(match.group("rest"))
    return Segment(
        name=match.group("name"),
        optional=optional or default is not None,
        catch_all=bool(match.group("star")),
        default=default,
        constraints=tuple(_constraint(n) for n in names),
    )


@dataclass(frozen=True)
class RouteTemplate:
    text: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, text: str) -> RouteTemplate:
        cleaned = text.strip().strip("/")
        parts = cleaned.split("/") if cleaned else []
        segments = tuple(_segment(part, text) for part in parts)
        for position, segment in enumerate(segments):
            if segment.catch_all and position != len(segments) - 1:
                raise RouteTemplateError(f"route {text!r}: a catch-all must be the last segment")
            later = segments[position + 1 :]
            if segment.optional and any(not s.optional and not s.catch_all for s in later):
                raise RouteTemplateError(
                    f"route {text!r}: an optional parameter must be at the end"
                )
        names = [s.name for s in segments if s.name]
        if len(names) != len(set(names)):
            raise RouteTemplateError(f"route {text!r} repeats a parameter name")
        return cls(text=text, segments=segments)

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a decoded path relative to the prefix, or None."""
        parts = path.strip("/").split("/") if path.strip("/") else []
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.catch_all:
                rest = "/".join(parts[index:])
                if rest and not segment.accepts(rest):
                    return None
                if rest or segment.default is not None:
                    values[segment.name or ""] = rest or (segment.default or "")
                return values
            if index >= len(parts):
                if not segment.optional:
                    return None
                if segment.default is not None and segment.name:
                    values[segment.name] = segment.default
                continue
            value = parts[index]
            if segment.literal is not None:
                if value.lower() != segment.literal.lower():
                    return None
                continue
            if not value or not segment.accepts(value):
                return None
            values[segment.name or ""] = value
        if len(parts) > len(self.segments):
            return None
        return values

    @property
    def precedence(self) -> tuple[int, ...]:
        """Sort key: literals before constrained parameters before plain ones before catch-alls."""

        def rank(segment: Segment) -> int:
            if segment.literal is not None:
                return 0
            if segment.catch_all:
                return 4
            if segment.constraints:
                return 1 if not segment.optional else 2
            return 2 if not segment.optional else 3

        return tuple(rank(s) for s in self.segments) + (5,)
