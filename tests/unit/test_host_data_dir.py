"""`--data-dir` moves all of the app's local state, whatever local.settings.json says."""

from __future__ import annotations

from pathlib import Path

import pytest

from devhost.appsettings import AppSettings
from devhost.host import HostOptions, data_dir_environment, resolve_data_dir

pytestmark = pytest.mark.unit


def test_the_flag_replaces_every_data_dir_setting(tmp_path: Path) -> None:
    settings = AppSettings({"PLATFORM_DATA_DIR": ".data", "DEVHOST_DATA_DIR": "elsewhere"}, {})
    options = HostOptions(script_root=tmp_path, data_dir=tmp_path / "second")
    data_dir = resolve_data_dir(options, settings)
    assert data_dir == (tmp_path / "second").resolve()
    assert data_dir_environment(options, data_dir) == {
        "DEVHOST_DATA_DIR": str(data_dir),
        "PLATFORM_DATA_DIR": str(data_dir),  # so the platform's lake is <data dir>/lake
    }


def test_without_the_flag_the_app_keeps_its_own_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEVHOST_DATA_DIR", raising=False)
    options = HostOptions(script_root=tmp_path)
    data_dir = resolve_data_dir(options, AppSettings({"PLATFORM_DATA_DIR": "state"}, {}))
    assert data_dir == (tmp_path / "state").resolve()
    assert data_dir_environment(options, data_dir) == {"DEVHOST_DATA_DIR": str(data_dir)}
    monkeypatch.setenv("DEVHOST_DATA_DIR", str(tmp_path / "set"))
    assert data_dir_environment(options, data_dir) == {"DEVHOST_DATA_DIR": str(tmp_path / "set")}
