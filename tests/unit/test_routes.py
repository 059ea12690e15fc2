"""Route templates: parameters, optional and catch-all segments, constraints, precedence."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.http.routes import RouteTemplate, RouteTemplateError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("items", "items", {}),
        ("Items", "items/", {}),
        ("items/{id}", "items/abc", {"id": "abc"}),
        ("items/{id:int}", "items/-12", {"id": "-12"}),
        ("items/{id:int}", "items/1.5", None),
        ("items/{id:int}", "items/2147483648", None),
        ("items/{id:long}", "items/2147483648", {"id": "2147483648"}),
        ("items/{id?}", "items", {}),
        ("items/{id=7}", "items", {"id": "7"}),
        ("items/{id:int?}", "items/x", None),
        ("x/{flag:bool}", "x/TRUE", {"flag": "TRUE"}),
        ("x/{flag:bool}", "x/yes", None),
        ("x/{name:alpha}", "x/abc", {"name": "abc"}),
        ("x/{name:alpha}", "x/ab1", None),
        ("x/{n:double}", "x/1.5e3", {"n": "1.5e3"}),
        ("x/{n:double}", "x/nan", None),
        ("x/{d:datetime}", "x/2026-01-02T03:04:05", {"d": "2026-01-02T03:04:05"}),
        ("x/{s:minlength(2):maxlength(3)}", "x/abcd", None),
        ("x/{s:length(2)}", "x/ab", {"s": "ab"}),
        ("x/{s:length(1,2)}", "x/abc", None),
        ("x/{n:min(5)}", "x/4", None),
        ("x/{n:max(5)}", "x/5", {"n": "5"}),
        ("x/{n:range(1,3)}", "x/3", {"n": "3"}),
        ("x/{n:range(1,3)}", "x/0", None),
        ("x/{code:regex(^[a-z]{{2}}\\d$)}", "x/ab1", {"code": "ab1"}),
        ("x/{code:regex(^[a-z]{{2}}\\d$)}", "x/abc1", None),
        ("x/{code:regex(^[a-z]+\\d$)}", "x/ab1", {"code": "ab1"}),
        ("files/{*path}", "files/a/b/c", {"path": "a/b/c"}),
        ("files/{*path}", "files", {}),
        ("a/b", "a/b/c", None),
        ("a/{x}", "a", None),
    ],
)
def test_match(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.parse(template).match(path) == expected


def test_guid_constraint() -> None:
    template = RouteTemplate.parse("u/{id:guid}")
    value = str(uuid.uuid4())
    assert template.match(f"u/{value}") == {"id": value}
    assert template.match("u/123") is None


@pytest.mark.parametrize(
    "template",
    [
        "a//b",
        "a/{x:unknown}",
        "a/{x}{y}",
        "a/x{y}",
        "{*rest}/a",
        "a/{x?}/b",
        "a/{x}/{x}",
        "a/{x:min(a)}",
        "a/{x:range(1)}",
        "a/{x:regex(()}",
    ],
)
def test_bad_templates_are_rejected(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate.parse(template)


def test_precedence_literal_then_constrained_then_plain_then_catch_all() -> None:
    templates = ["items/{*rest}", "items/{id}", "items/{id:int}", "items/latest"]
    ordered = sorted((RouteTemplate.parse(t) for t in templates), key=lambda t: t.precedence)
    assert [t.text for t in ordered] == [
        "items/latest",
        "items/{id:int}",
        "items/{id}",
        "items/{*rest}",
    ]


segment = st.text(
    alphabet=st.characters(blacklist_characters="/{}?", blacklist_categories=("Cs",)), min_size=1
)


@given(st.lists(segment, min_size=1, max_size=5))
def test_parameters_capture_any_segment(values: list[str]) -> None:
    template = RouteTemplate.parse("/".join(f"{{p{i}}}" for i in range(len(values))))
    assert template.match("/".join(values)) == {f"p{i}": v for i, v in enumerate(values)}


@given(st.text(max_size=200))
def test_arbitrary_paths_never_crash(path: str) -> None:
    for template in ("a/{x:int}/{*rest}", "{x:regex(^a+$)}/{y?}", "{n:range(1,9)}"):
        RouteTemplate.parse(template).match(path)


@given(st.text(max_size=60))
def test_arbitrary_templates_parse_or_raise_template_error(text: str) -> None:
    try:
        RouteTemplate.parse(text)
    except RouteTemplateError:
        pass
