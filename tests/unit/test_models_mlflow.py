"""The MLflow registry without a server: `MLFLOW_TRACKING_URI` checked and wired (the document
registry stays the default, and `mlflow` is imported only when the setting is set), MLflow's
key rule held equal to MLflow's own, its batch limits kept, its errors translated, and hostile
artifact paths refused. The adapter against a real server is tested in
tests/integration/test_models_mlflow.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import config
from shared.bootstrap import bootstrap
from shared.config import SettingsError, load_settings
from shared.models.artifacts import ArtifactError, ArtifactNotFound
from shared.models.mlflow_api import Metric, MlflowException, Param, RunTag
from shared.models.mlflow_artifacts import MlflowArtifacts, _run_path
from shared.models.mlflow_registry import MlflowRegistry
from shared.models.mlflow_run_data import (
    BATCH_BYTES,
    METRICS_PER_BATCH,
    PARAMS_AND_TAGS_PER_BATCH,
    batches,
    iso,
)
from shared.models.mlflow_runs import check_mlflow_keys, experiment_name, mlflow_errors, run_key
from shared.models.registry import (
    InvalidRegistryInput,
    ModelNotFound,
    ModelRegistry,
    RegistryUnavailable,
)
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit

RELAXED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# The setting


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("", None),
        ("   ", None),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("https://mlflow.example.com/", "https://mlflow.example.com"),
        (
            "https://mlflow.example.com:8443/prefix/path",
            "https://mlflow.example.com:8443/prefix/path",
        ),
        ("databricks", "databricks"),
        ("databricks://prod-profile", "databricks://prod-profile"),
    ],
)
def test_the_tracking_uris_mlflow_serves(value: str, kept: str | None) -> None:
    assert load_settings({"MLFLOW_TRACKING_URI": value}).mlflow_tracking_uri == kept


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("file:///tmp/mlruns", "must be"),
        ("sqlite:///mlflow.db", "must be"),
        ("/tmp/mlruns", "must be"),
        ("mlruns", "must be"),
        ("ftp://host/x", "must be"),
        ("http://user:secret@host:5000", "no credentials"),
        ("http://host:99999", "must be"),
        ("http://host:5000/?token=secret", "no credentials"),
        ("https://host/#secret", "no credentials"),
        ("http://", "must be"),
        ("http://host/a path", "must be"),
        ("databricks://", "must be"),
        ("databricks-uc", "Unity Catalog"),
        ("databricks-uc://profile", "Unity Catalog"),
    ],
)
def test_other_uris_are_refused_naming_the_setting(value: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment) as raised:
        load_settings({"MLFLOW_TRACKING_URI": value})
    assert raised.value.setting == "MLFLOW_TRACKING_URI"
    assert "secret" not in str(raised.value)


AZURE_ML = (
    "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/0000/resourceGroups/rg/"
    "providers/Microsoft.MachineLearningServices/workspaces/ws"
)


def test_azure_ml_needs_its_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="azureml-mlflow"):
        load_settings({"MLFLOW_TRACKING_URI": AZURE_ML})  # not installed here
    monkeypatch.setattr(config, "_installed", lambda module: module == "azureml.mlflow")
    assert load_settings({"MLFLOW_TRACKING_URI": AZURE_ML}).mlflow_tracking_uri == AZURE_ML


@RELAXED
@given(
    st.text(max_size=120) | st.from_regex(r"https?://[a-z0-9.:/\[\]@?#%-]{0,60}", fullmatch=True)
)
def test_any_value_is_kept_or_refused_naming_the_setting(value: str) -> None:
    try:
        kept = load_settings({"MLFLOW_TRACKING_URI": value}).mlflow_tracking_uri
    except SettingsError as error:
        assert error.setting == "MLFLOW_TRACKING_URI"
        assert len(str(error)) < 400
        return
    assert kept is None or kept.startswith(("http://", "https://", "databricks"))


# Choosing the adapter


def test_the_document_registry_stays_the_default(tmp_path: Path) -> None:
    platform = bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path)}))
    assert isinstance(platform.models.registry, ModelRegistry)


def test_mlflow_is_the_registry_when_its_uri_is_set(tmp_path: Path) -> None:
    settings = load_settings(
        {"PLATFORM_DATA_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    )
    models = bootstrap(settings).models  # the client is made; nothing is called yet
    assert isinstance(models.registry, MlflowRegistry)
    assert isinstance(models.artifacts, MlflowArtifacts)
    assert models.training.registry is models.registry
    assert models.training.artifacts is models.artifacts
    assert models.registry.client.tracking_uri == "http://127.0.0.1:9"


IMPORTED = """
import sys, json
import function_app
from shared.bootstrap import bootstrap
platform = bootstrap()
before = any(m == "mlflow" or m.startswith("mlflow.") for m in sys.modules)
platform.models
after = any(m == "mlflow" or m.startswith("mlflow.") for m in sys.modules)
print(json.dumps([before, after]))
"""


@pytest.mark.parametrize(
    ("uri", "imported"), [("", [False, False]), ("http://127.0.0.1:9", [False, True])]
)
def test_mlflow_is_imported_only_when_it_is_the_registry(
    tmp_path: Path, uri: str, imported: list[bool]
) -> None:
    environ = {**os.environ, "PLATFORM_DATA_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": uri}
    answer = subprocess.run(
        [sys.executable, "-c", IMPORTED],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(answer.stdout.strip().splitlines()[-1]) == imported


QUIET = """
import json, os
import shared.models.mlflow_api
from mlflow.telemetry.client import get_telemetry_client
print(json.dumps([get_telemetry_client() is None, os.environ["MLFLOW_DISABLE_TELEMETRY"]]))
"""


def test_mlflow_s_client_reports_nothing_unless_told_to() -> None:
    hints = {"CI", "PYTEST_CURRENT_TEST", "DO_NOT_TRACK"}  # each also keeps MLflow quiet
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in hints and not key.startswith("MLFLOW_")
    }
    answer = subprocess.run(
        [sys.executable, "-c", QUIET],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(answer.stdout.strip().splitlines()[-1]) == [True, "true"]


# MLflow's rules, held here before anything is written


def test_experiments_and_run_keys() -> None:
    assert experiment_name("http://host:5000", "fraud") == "platform-model-fraud"
    assert experiment_name(AZURE_ML, "fraud") == "platform-model-fraud"
    assert experiment_name("databricks", "fraud") == "/Shared/platform-model-fraud"
    assert experiment_name("databricks://p", "fraud") == "/Shared/platform-model-fraud"
    key = run_key("x' OR tags.a = 'b")
    assert len(key) == 32 and set(key) <= set("0123456789abcdef")
    assert run_key("\ud800") != run_key("")  # a lone surrogate hashes, too


def _mlflow_accepts(key: str) -> bool:
    from mlflow.utils.validation import _validate_param_name

    try:
        _validate_param_name(key)
    except MlflowException:
        return False
    return True


@RELAXED
@given(st.text(max_size=30) | st.from_regex(r"[a-z/. :_-]{1,12}", fullmatch=True))
def test_keys_are_accepted_exactly_as_mlflow_accepts_them(key: str) -> None:
    try:
        check_mlflow_keys("params", [key])
    except InvalidRegistryInput as error:
        assert not _mlflow_accepts(key)
        assert len(str(error)) < 160
    else:
        assert _mlflow_accepts(key)


def test_tags_may_not_take_the_adapter_s_prefix() -> None:
    check_mlflow_keys("params", ["platform.x"])  # a param may
    with pytest.raises(InvalidRegistryInput, match="registry's"):
        check_mlflow_keys("tags", ["platform.validation"], tags=True)


@RELAXED
@given(
    params=st.lists(st.text(max_size=3000), max_size=300),
    tags=st.lists(st.text(max_size=8000), max_size=30),
    metrics=st.integers(0, 2500),
)
def test_batches_keep_within_mlflow_s_limits(
    params: list[str], tags: list[str], metrics: int
) -> None:
    param_list = [Param(f"p{n}", value) for n, value in enumerate(params)]
    tag_list = [RunTag(f"t{n}", value) for n, value in enumerate(tags)]
    metric_list = [Metric(f"m{n}", 1.0, 0, 0) for n in range(metrics)]
    sent_params, sent_tags, sent_metrics = [], [], []
    for batch_metrics, batch_params, batch_tags in batches(metric_list, param_list, tag_list):
        assert batch_metrics or batch_params or batch_tags
        assert len(batch_params) + len(batch_tags) <= PARAMS_AND_TAGS_PER_BATCH
        assert len(batch_metrics) <= METRICS_PER_BATCH
        size = sum(len(json.dumps([e.key, e.value])) for e in [*batch_params, *batch_tags])
        assert size <= BATCH_BYTES or len(batch_params) + len(batch_tags) == 1
        assert not (batch_metrics and (batch_params or batch_tags))
        sent_params += batch_params
        sent_tags += batch_tags
        sent_metrics += batch_metrics
    assert (sent_params, sent_tags, sent_metrics) == (param_list, tag_list, metric_list)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("RESOURCE_DOES_NOT_EXIST", ModelNotFound),
        ("NOT_FOUND", ModelNotFound),
        ("INVALID_PARAMETER_VALUE", InvalidRegistryInput),
        ("BAD_REQUEST", InvalidRegistryInput),
        ("INTERNAL_ERROR", RegistryUnavailable),
        ("PERMISSION_DENIED", RegistryUnavailable),
        ("TEMPORARILY_UNAVAILABLE", RegistryUnavailable),
    ],
)
def test_mlflow_s_errors_become_the_registry_s(code: str, expected: type[Exception]) -> None:
    from mlflow.exceptions import RestException  # as the client raises a server's answer

    answer = RestException({"error_code": code, "message": "x" * 10_000})
    with pytest.raises(expected) as raised, mlflow_errors(lambda: ModelNotFound("no fraud")):
        raise answer
    assert len(str(raised.value)) < 160  # MLflow's messages echo values: never passed on whole


def test_times_are_written_as_the_document_registry_writes_them() -> None:
    assert iso(1_796_667_803_956) == "2026-12-07T18:23:23.956000Z"
    assert iso(None) == "1970-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    "path",
    [
        "fraud/runs/../etc",
        "fraud/runs/r1/../../etc/passwd",
        "fraud/runs/r1/./x",
        "fraud/runs/r1//x",
        "fraud/runs/r1/a b",
        "fraud/runs/r1/x\n",
        "fraud/runs/r1/" + "x" * 200,
        "../runs/r1/x",
        "fraud/runs/./x",
    ],
)
def test_hostile_run_paths_are_refused(path: str) -> None:
    with pytest.raises(ArtifactError) as raised:
        _run_path(path)
    assert not isinstance(raised.value, ArtifactNotFound)


def test_paths_that_are_not_a_run_s_go_elsewhere() -> None:
    assert _run_path("fraud/batch/b1/job.json") is None
    assert _run_path("fraud/runs") is None
    assert _run_path("fraud/runs/r1") == ("fraud", "r1", "")
    assert _run_path("fraud/runs/train-fraud-2026.1/model.onnx") == (
        "fraud",
        "train-fraud-2026.1",
        "model.onnx",
    )
