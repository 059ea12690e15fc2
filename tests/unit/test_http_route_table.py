"""The HTTP extension's route table finds what trying every route in precedence order finds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.http.extension import HttpRoute, RouteTable
from devhost.http.routes import RouteTemplate

pytestmark = pytest.mark.unit

TEMPLATES = [
    ("items", {"GET"}),
    ("items/{id:int}", {"GET", "DELETE"}),
    ("items/{id}", {"PUT"}),
    ("Items/special", {"POST"}),
    ("{tenant}/items", {"GET"}),
    ("{*rest}", {"PATCH"}),
    ("score/{model}", {"POST"}),
    ("recommend/{user_id}", {"GET"}),
    ("noop", {"GET", "POST"}),
    ("noop/guarded", {"GET"}),
    ("", {"GET"}),
]


def routes() -> list[HttpRoute]:
    function: Any = None  # the table never looks at the function
    found = [
        HttpRoute(function, RouteTemplate.parse(text), frozenset(methods), "anonymous")
        for text, methods in TEMPLATES
    ]
    found.sort(key=lambda r: r.template.precedence)
    return found


def every_route_in_turn(
    table: list[HttpRoute], path: str, method: str
) -> tuple[HttpRoute | None, dict[str, str], set[str]]:
    """What the extension did before it had a table."""
    allowed: set[str] = set()
    for route in table:
        values = route.template.match(path)
        if values is None:
            continue
        if method in route.methods or (method == "HEAD" and "GET" in route.methods):
            return route, values, allowed
        allowed |= route.methods
    return None, {}, allowed


SEGMENT = st.sampled_from(["items", "ITEMS", "special", "7", "-3", "x", "noop", "guarded", ""])
PATHS = st.lists(SEGMENT, max_size=4).map("/".join) | st.text(max_size=20)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])


@given(path=PATHS, method=METHODS, leading=st.booleans())
def test_the_table_finds_what_every_route_in_turn_finds(
    path: str, method: str, leading: bool
) -> None:
    table = routes()
    path = "/" + path if leading else path
    assert RouteTable(table).find(path, method) == every_route_in_turn(table, path, method)


def test_a_literal_first_segment_still_yields_to_parameters_of_higher_precedence() -> None:
    table = RouteTable(routes())
    route, values, _ = table.find("acme/items", "GET")
    assert route is not None and route.template.text == "{tenant}/items"
    assert values == {"tenant": "acme"}
    route, values, allowed = table.find("items/12", "POST")
    assert route is not None and route.template.text == "{*rest}" or allowed
