"""Indexing an app: bindings with settings resolved, and clear errors naming what is wrong."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devhost.appsettings import AppSettings
from devhost.indexing import IndexingError, index_app, load_app
from tests.devhost_process import FIXTURE_APPS, PROJECT_ROOT

pytestmark = pytest.mark.unit


def index(name: str, values: dict[str, str] | None = None) -> list:  # type: ignore[type-arg]
    return index_app(load_app(FIXTURE_APPS / name), AppSettings(values or {}, environ={}))


def test_functions_bindings_and_settings_are_indexed() -> None:
    functions = {f.name: f for f in index("http_basic", {"GREETING_ROUTE": "hi/there"})}
    assert "renamed" in functions and "greeting" not in functions
    assert functions["renamed"].trigger.get("route") == "hi/there"
    assert functions["get_item"].trigger.type == "httpTrigger"
    assert not functions["get_item"].is_async and functions["delete_item"].is_async
    assert [b.name for b in functions["out_binding"].outputs] == ["response", "$return"]


def test_unresolved_setting_names_function_and_binding() -> None:
    with pytest.raises(IndexingError) as raised:
        index("bad_setting")
    message = str(raised.value)
    assert "'reader'" in message and "'msg'" in message and "UNDEFINED_QUEUE" in message


def test_binding_without_parameter_names_function_and_binding() -> None:
    with pytest.raises(IndexingError, match="function 'x', binding 'doc'"):
        index("no_trigger_param")


def test_app_that_fails_to_import_is_reported() -> None:
    with pytest.raises(IndexingError, match="start-up check failed"):
        load_app(FIXTURE_APPS / "broken_import")


def test_missing_script_file_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IndexingError, match="function_app.py"):
        load_app(tmp_path)


@pytest.mark.parametrize(
    ("app", "fragment"),
    [
        ("bad_route", "function 'things', binding 'req' (httpTrigger): unknown route constraint"),
        ("bad_setting", "UNDEFINED_QUEUE"),
        ("broken_import", "start-up check failed"),
    ],
)
def test_devhost_refuses_to_start_with_the_reason(tmp_path, app: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devhost",
            "start",
            "--script-root",
            str(FIXTURE_APPS / app),
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert fragment in result.stderr
