"""The composition root builds every function, with unique names."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from devhost.appsettings import AppSettings
from devhost.indexing import index_app, load_app
from shared.config import SettingsError
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit


def test_get_functions_builds_with_unique_names(platform_env: Path) -> None:
    app = load_app(PROJECT_ROOT)
    functions = app.get_functions()
    names = Counter(f.get_function_name() for f in functions)
    assert names, "the app defines functions"
    assert [n for n, count in names.items() if count > 1] == []
    assert "health" in names


def test_every_function_indexes_in_the_devhost(platform_env: Path) -> None:
    specs = index_app(load_app(PROJECT_ROOT), AppSettings({}, environ={}))
    assert all(spec.trigger for spec in specs)


def test_bad_settings_stop_start_up_naming_the_setting(
    platform_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_ENVIRONMENT", "nowhere")
    with pytest.raises(Exception) as raised:
        load_app(PROJECT_ROOT)
    assert isinstance(raised.value.__cause__, SettingsError)
    assert "PLATFORM_ENVIRONMENT" in str(raised.value)
