"""The OpenAPI description covers every HTTP route of the app, with the contracts' schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.indexing import load_app
from functions import openapi as openapi_function
from shared.events.contracts import ContractRegistry
from shared.openapi import openapi_document
from tests.devhost_process import PROJECT_ROOT
from tests.functions import blueprint_function

pytestmark = pytest.mark.unit


def app_routes(platform_env: Any) -> set[tuple[str, str]]:
    routes = set()
    for function in load_app(PROJECT_ROOT).get_functions():
        for raw in function.get_raw_bindings():
            binding = json.loads(raw)
            if binding.get("type") == "httpTrigger":
                for method in binding.get("methods") or ["GET", "POST"]:
                    routes.add((f"/api/{binding['route']}", method.lower()))
    return routes


def test_every_route_of_the_app_is_described(platform_env: Any) -> None:
    described = {
        (path, method)
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    }
    routes = app_routes(platform_env)
    assert routes - described == set(), "routes the description lacks"
    assert described - routes == set(), "described routes the app does not have"


def test_the_event_schemas_are_the_contracts() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for contract in ContractRegistry().latest():
        data = schemas[contract.data.__name__]
        assert set(data["properties"]) == set(contract.field_names)
        assert set(data["required"]) == set(contract.field_names)
    payment = schemas["PaymentTransaction"]["properties"]
    assert payment["card_number"] == {"type": "string", "minLength": 12, "maxLength": 19}
    assert len(payment["merchant_category"]["enum"]) == 10_000


def test_the_description_is_served_as_json(platform_env: Path) -> None:
    serve = blueprint_function(openapi_function.bp, "openapi")
    loopback = {"x-forwarded-for": "127.0.0.1"}  # the local developer, as the devhost says
    response = serve(func.HttpRequest("GET", "/api/openapi.json", body=b"", headers=loopback))
    document = json.loads(response.get_body())
    assert response.status_code == 200 and document["openapi"] == "3.1.0"
    assert response.mimetype == "application/json"
