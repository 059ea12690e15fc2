"""The models API without the host: the registry's answers, the ONNX download, and every
hostile path or body answered with a 4xx, never a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions import models as model_functions
from shared.bootstrap import current_platform
from shared.models.service import (
    BadModelRequest,
    parse_batch_scoring,
    parse_training,
    parse_version,
)
from tests.functions import blueprint_function

pytestmark = pytest.mark.unit

LOOPBACK = {"x-forwarded-for": "127.0.0.1"}  # the local developer, who holds every role


def call(function: str, path: str, **route: str) -> func.HttpResponse:
    request = func.HttpRequest("GET", path, body=b"", headers=LOOPBACK, route_params=route)
    response: func.HttpResponse = blueprint_function(model_functions.bp, function)(request)
    return response


def register(name: str = "fraud", graph: bytes = b"onnx-bytes") -> Any:
    models = current_platform().models
    models.artifacts.put(f"{name}/runs/r1/model.onnx", graph)
    version = models.registry.create_version(
        name,
        source=models.artifacts.uri(f"{name}/runs/r1"),
        run_id="r1",
        metrics={"pr_auc": 0.8},
        params={"algorithm": "lightgbm"},
        signature={"inputs": [], "outputs": []},
        input_example=[1.0, 2.0],
        training_data={"bronze.payment_transaction": 3},
        code_version="test",
    )
    models.registry.set_alias(name, "champion", version.version)
    return version


def test_models_are_listed_with_their_versions_and_aliases(platform_env: Path) -> None:
    assert json.loads(call("list_models", "/api/models").get_body()) == {"models": []}
    register()
    listed = json.loads(call("list_models", "/api/models").get_body())["models"]
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [
        ("fraud", 1, {"champion": 1})
    ]
    detail = json.loads(call("get_model", "/api/models/fraud", name="fraud").get_body())
    assert detail["versions"][0]["metrics"] == {"pr_auc": 0.8}
    assert detail["versions"][0]["training_data"] == {"bronze.payment_transaction": 3}


def test_the_onnx_file_downloads_as_it_was_stored(platform_env: Path) -> None:
    register(graph=b"\x08\x07graph")
    answer = call("get_model_onnx", "/x", name="fraud", version="1")
    assert answer.status_code == 200 and answer.get_body() == b"\x08\x07graph"
    assert answer.mimetype == "application/octet-stream"
    assert 'filename="fraud-v1.onnx"' in answer.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("route", "params", "status"),
    [
        ("get_model", {"name": "churn"}, 404),
        ("get_model", {"name": "maintenance"}, 404),  # known, not trained yet
        ("get_model", {"name": "../../etc"}, 404),
        ("get_model", {"name": "F" * 5000}, 404),
        ("get_model_onnx", {"name": "fraud", "version": "0"}, 400),
        ("get_model_onnx", {"name": "fraud", "version": "-1"}, 400),
        ("get_model_onnx", {"name": "fraud", "version": "1.0"}, 400),
        ("get_model_onnx", {"name": "fraud", "version": "9" * 30}, 400),
        ("get_model_onnx", {"name": "fraud", "version": "7"}, 404),
        ("get_model_onnx", {"name": "fraud\x00", "version": "1"}, 404),
        ("get_model_onnx", {"name": "maintenance", "version": "1"}, 404),
    ],
)
def test_hostile_paths_get_a_clear_4xx(
    platform_env: Path, route: str, params: dict[str, str], status: int
) -> None:
    register()
    answer = call(route, "/x", **params)
    assert answer.status_code == status
    assert json.loads(answer.get_body())["error"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", {}),
        (b"{}", {}),
        (b' {"label_maturity_hours": 36}\n', {"label_maturity_hours": 36.0}),
    ],
)
def test_training_options_are_read(body: bytes, expected: dict[str, Any]) -> None:
    assert parse_training(body) == expected


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"[1]", "object"),
        (b"{", "JSON"),
        (b"\n", "JSON"),
        (b"  ", "JSON"),
        (b"\xff\xfe", "JSON"),
        (b'{"label_maturity_hours": true}', "label_maturity_hours"),
        (b'{"label_maturity_hours": null}', "label_maturity_hours"),
        (b'{"label_maturity_hours": "36"}', "label_maturity_hours"),
        (b'{"label_maturity_hours": 0.5}', "label_maturity_hours"),
        (b'{"label_maturity_hours": 1e309}', "label_maturity_hours"),
        (b'{"label_maturity_hours": NaN}', "label_maturity_hours"),
        (b'{"epochs": 3}', "epochs"),
        (b'{"label_maturity_hours": 5, "label_maturity_hours": 6, "x": 1}', "'x'"),
        (b" " * 5000, "4096"),
    ],
)
def test_bad_training_options_are_refused_naming_the_problem(body: bytes, named: str) -> None:
    with pytest.raises(BadModelRequest, match=named):
        parse_training(body)


@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
@settings(max_examples=300)
def test_any_body_is_options_or_a_bad_request(body: bytes) -> None:
    try:
        options = parse_training(body)
    except BadModelRequest:
        return
    assert set(options) <= {"label_maturity_hours"}


@given(st.text(max_size=40))
def test_any_version_text_is_a_version_or_a_bad_request(text: str) -> None:
    try:
        version = parse_version(text)
    except BadModelRequest:
        return
    assert version >= 1 and str(version) == text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", {}),
        (b"{}", {}),
        (b'{"version": 2}', {"version": 2}),
        (b'{"source": "gold.recent_payments"}', {"source": "gold.recent_payments"}),
        (
            b'{"version": 1, "source": "silver.iot_telemetry"}',
            {"version": 1, "source": "silver.iot_telemetry"},
        ),
    ],
)
def test_batch_scoring_options_are_read(body: bytes, expected: dict[str, Any]) -> None:
    assert parse_batch_scoring(body) == expected


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"[1]", "object"),
        (b"{", "JSON"),
        (b'{"version": 0}', "version"),
        (b'{"version": true}', "version"),
        (b'{"version": 1.5}', "version"),
        (b'{"version": "1"}', "version"),
        (b'{"version": 1e300}', "version"),
        (b'{"version": 99999999999999999999999}', "version"),
        (b'{"source": "bronze.payment_transaction"}', "source"),
        (b'{"source": "gold.x; DROP TABLE y"}', "source"),
        (b'{"source": "gold.../../etc"}', "source"),
        (b'{"source": "Gold.X"}', "source"),
        (b'{"source": 3}', "source"),
        (b'{"source": "gold.' + b"a" * 100 + b'"}', "source"),
        (b'{"table": "gold.x"}', "'table'"),
        (b" " * 5000, "4096"),
    ],
)
def test_bad_batch_scoring_options_are_refused_naming_the_problem(body: bytes, named: str) -> None:
    with pytest.raises(BadModelRequest, match=named):
        parse_batch_scoring(body)


@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
@settings(max_examples=300)
def test_any_body_is_batch_scoring_options_or_a_bad_request(body: bytes) -> None:
    try:
        options = parse_batch_scoring(body)
    except BadModelRequest:
        return
    assert set(options) <= {"version", "source"}
