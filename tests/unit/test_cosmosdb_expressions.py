"""Binding expressions of cosmosDB input bindings: HTTP binding data, `{a.b}`, SQL parameters."""

from __future__ import annotations

import json
import string

import azure.functions as func
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.blob.output import trigger_binding_data
from devhost.cosmosdb.expressions import (
    BindingExpressionError,
    binding_data,
    query_with_parameters,
    resolve,
)

pytestmark = pytest.mark.unit


def _request(body: object = None, **params: str) -> func.HttpRequest:
    return func.HttpRequest(
        method="POST",
        url="http://localhost/api/x",
        headers={"x-tenant": "t1"},
        params=params,
        route_params={"id": "from-route"},
        body=b"" if body is None else json.dumps(body).encode(),
    )


def test_http_binding_data_layers_body_query_and_route() -> None:
    data = binding_data(_request({"id": "from-body", "size": 3}, id="from-query", code="key"))
    assert data["id"] == "from-route"  # the route wins over the query, the query over the body
    assert data["size"] == 3
    assert "code" not in data  # the function key is no binding data
    assert data["Query"] == {"id": "from-query", "code": "key"}
    assert data["Headers"]["x-tenant"] == "t1"


def test_a_body_that_is_not_a_json_object_adds_nothing() -> None:
    request = func.HttpRequest("POST", "http://localhost/", body=b"not json")
    assert binding_data(request) == {"Query": {}, "Headers": {}}


def test_blob_path_parameters_are_binding_data() -> None:
    token = trigger_binding_data.set({"name": "report"})
    try:
        assert resolve("{name}-1", binding_data(object())) == "report-1"
    finally:
        trigger_binding_data.reset(token)


def test_resolve_navigates_objects_case_insensitively() -> None:
    data = binding_data(_request(tenant="acme"))
    assert resolve("{query.TENANT}/{ID}", data) == "acme/from-route"
    assert resolve("{{literal}} {id}", data) == "{literal} from-route"
    assert resolve("n={n}", {"n": 4}) == "n=4"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{missing}", "no value for {missing}: the trigger's binding data has no 'missing'"),
        ("{Query.color}", "no value for {Query.color}: Query has no 'color' (it has nothing)"),
        ("{id.x}", "id is not an object"),
        ("{Query}", "is an object or a list, not a value"),
        ("a}b", "unbalanced '}'"),
        ("{a b}", "is not a binding name"),
    ],
)
def test_unresolvable_expressions_say_why(template: str, message: str) -> None:
    with pytest.raises(BindingExpressionError) as raised:
        resolve(template, binding_data(_request()))
    assert message in str(raised.value)


def test_sql_expressions_become_parameters_never_text() -> None:
    data = {"category": "x' OR 1=1 --", "Query": {"color": "red"}}
    sql, parameters = query_with_parameters(
        "SELECT * FROM c WHERE c.category = {category} AND c.color = {Query.color} "
        "AND c.other = {category}",
        data,
    )
    assert sql == (
        "SELECT * FROM c WHERE c.category = @category AND c.color = @Query_color "
        "AND c.other = @category"
    )
    assert parameters == [
        {"name": "@category", "value": "x' OR 1=1 --"},
        {"name": "@Query_color", "value": "red"},
    ]


def test_parameter_names_stay_distinct() -> None:
    _, parameters = query_with_parameters("{a.b} {a_b}", {"a": {"b": 1}, "a_b": 2})
    assert [p["name"] for p in parameters] == ["@a_b", "@a_b_"]


@given(st.text(alphabet=string.printable.replace("{", "").replace("}", "")))
def test_text_without_braces_is_left_as_it_is(text: str) -> None:
    assert resolve(text, {}) == text
    assert query_with_parameters(text, {}) == (text, [])


@given(st.text())
def test_any_value_is_substituted_whole_and_only_bound_in_sql(value: str) -> None:
    assert resolve("{v}", {"v": value}) == value
    sql, parameters = query_with_parameters("c.v = {v}", {"v": value})
    assert sql == "c.v = @v" and parameters == [{"name": "@v", "value": value}]


@given(st.text())
def test_any_template_resolves_or_fails_with_a_binding_error(template: str) -> None:
    try:
        resolve(template, {"a": "1"})
    except BindingExpressionError:
        pass
