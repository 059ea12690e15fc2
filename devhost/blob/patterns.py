"""Blob path patterns as the Functions host reads them: `container/{name}.csv`, `{{` escapes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

# The same four alternatives as the WebJobs SDK's BindingTemplateParser, in the same order.
_TOKEN = re.compile(
    r"(?P<escape>\{\{|\}\})|\{(?P<parameter>[^{}]*)\}|(?P<literal>[^{}]+)|(?P<unbalanced>[{}])"
)
_CONTAINER = re.compile(r"^(?:\$root|\$logs|\$web|(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*)$")
# Built-in expressions Azure resolves in output paths when no binding data has that name.
_BUILTINS = ("rand-guid", "sys.randguid", "datetime", "sys.utcnow")


class BlobPatternError(ValueError):
    """A blob path pattern or template is malformed; the message says what and where."""


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class Parameter:
    name: str


Token = Literal | Parameter


def tokenize(
    template: str, *, allow_builtins: bool = False, source: str | None = None, offset: int = 0
) -> tuple[Token, ...]:
    """Split a template into literals and `{parameter}`s; `{{` and `}}` are literal braces.

    Errors quote `source` (the whole path, when template is part of it at `offset`).
    """
    quoted = source if source is not None else template
    tokens: list[Token] = []
    for match in _TOKEN.finditer(template):
        kind = match.lastgroup
        if kind == "escape":
            tokens.append(Literal(match.group()[0]))
        elif kind == "literal":
            tokens.append(Literal(match.group()))
        elif kind == "parameter":
            name = match.group("parameter")
            _check_parameter(quoted, name, offset + match.start() + 1, allow_builtins)
            tokens.append(Parameter(name))
        else:
            brace = match.group()
            side = "closing" if brace == "{" else "opening"
            raise BlobPatternError(
                f"{quoted!r}: missing {side} brace for {brace!r} at position"
                f" {offset + match.start() + 1}"
                " (write {{ or }} for a literal brace)"
            )
    return _merge_literals(tokens)


def _check_parameter(template: str, name: str, position: int, allow_builtins: bool) -> None:
    if not name:
        raise BlobPatternError(f"{template!r}: the parameter name at position {position} is empty")
    if allow_builtins and name.lower() in _BUILTINS:
        return
    if not name.isidentifier():
        raise BlobPatternError(
            f"{template!r}: the parameter name {name!r} is invalid; use letters, digits and _,"
            " starting with a letter or _"
        )


def _merge_literals(tokens: list[Token]) -> tuple[Token, ...]:
    merged: list[Token] = []
    for token in tokens:
        previous = merged[-1] if merged else None
        if isinstance(token, Literal) and isinstance(previous, Literal):
            merged[-1] = Literal(previous.text + token.text)
        else:
            merged.append(token)
    return tuple(merged)


def render(tokens: tuple[Token, ...], values: Mapping[str, str]) -> str:
    """Substitute parameters from values (matched case-insensitively, as Azure does)."""
    lowered = {key.lower(): value for key, value in values.items()}
    parts: list[str] = []
    for token in tokens:
        if isinstance(token, Literal):
            parts.append(token.text)
        elif token.name.lower() in lowered:
            parts.append(str(lowered[token.name.lower()]))
        elif token.name.lower() in _BUILTINS:
            parts.append(_builtin(token.name.lower()))
        else:
            known = ", ".join(sorted(values)) or "none"
            raise BlobPatternError(
                f"no value for the parameter {{{token.name}}} (binding data: {known})"
            )
    return "".join(parts)


def _builtin(name: str) -> str:
    now = datetime.now(UTC)
    if name in ("rand-guid", "sys.randguid"):
        return str(uuid.uuid4())
    if name == "datetime":
        return now.strftime("%Y-%m-%dT%H-%M-%SZ")
    return now.isoformat().replace("+00:00", "Z")


def split_container(path: str) -> tuple[str, str]:
    """Split `container/blob/name` at its first slash, insisting on both parts."""
    container, slash, name = path.partition("/")
    if not slash or not container or not name:
        raise BlobPatternError(
            f"{path!r}: a blob path is 'container/blob-name', e.g. 'landing/{{name}}.csv'"
        )
    return container, name


def check_container(container: str, where: str) -> None:
    """Apply Azure's container naming rules, so a name that works here works in Azure."""
    if not _CONTAINER.match(container):
        raise BlobPatternError(
            f"{where!r}: {container!r} is not a valid container name (3-63 characters:"
            " lower-case letters, digits and single hyphens, starting and ending with a"
            " letter or digit)"
        )


@dataclass(frozen=True)
class BlobPattern:
    """A blob trigger's `path`: a fixed container and a pattern for the blob name."""

    text: str
    container: str
    tokens: tuple[Token, ...]
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> BlobPattern:
        """Parse `container/pattern`; raise BlobPatternError on anything Azure would reject."""
        container, name_pattern = split_container(text)
        if "{" in container or "}" in container:
            raise BlobPatternError(
                f"{text!r}: the container name of a blob trigger cannot hold parameters"
            )
        check_container(container, text)
        tokens = tokenize(name_pattern, source=text, offset=len(container) + 1)
        seen: set[str] = set()
        pieces = ["^"]
        for token in tokens:
            if isinstance(token, Literal):
                pieces.append(re.escape(token.text))
                continue
            if token.name.lower() in seen:
                raise BlobPatternError(f"{text!r}: the parameter {{{token.name}}} appears twice")
            seen.add(token.name.lower())
            # Greedy, as the WebJobs SDK's capture pattern is: `{name}.{ext}` on a.b.c
            # gives name a.b and ext c.
            pieces.append(f"(?P<{token.name}>.*)")
        pieces.append("$")
        return cls(text, container, tokens, re.compile("".join(pieces), re.DOTALL))

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tokens if isinstance(t, Parameter))

    def match_name(self, blob_name: str) -> dict[str, str] | None:
        """Binding data for a blob name inside this pattern's container, or None."""
        found = self.regex.match(blob_name)
        return None if found is None else found.groupdict()

    def match(self, blob_path: str) -> dict[str, str] | None:
        """Binding data for a full `container/name` blob path, or None if it does not match."""
        container, _, name = blob_path.partition("/")
        if container != self.container or not name:
            return None
        return self.match_name(name)

    def render(self, values: Mapping[str, str]) -> str:
        """The full blob path this pattern gives for the binding data."""
        return f"{self.container}/{render(self.tokens, values)}"


def resolve_output_path(template: str, binding_data: Mapping[str, str]) -> tuple[str, str]:
    """Resolve an output binding's `path` to (container, blob name)."""
    path = render(tokenize(template, allow_builtins=True), binding_data)
    container, name = split_container(path)
    check_container(container, template)
    return container, name
