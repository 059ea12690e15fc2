"""Settings: defaults for `make run`, and a clear error naming each bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import PROJECT_ROOT, Adapter, SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_need_no_configuration() -> None:
    settings = load_settings({})
    assert settings.environment == "local"
    assert settings.data_dir == PROJECT_ROOT / ".data"
    assert settings.lake.adapter is Adapter.LOCAL
    assert settings.lake.uri == (PROJECT_ROOT / ".data" / "lake").as_posix()


def test_data_dir_moves_the_lake_with_it(tmp_path: Path) -> None:
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path)})
    assert settings.data_dir == tmp_path
    assert settings.lake.uri == (tmp_path / "lake").as_posix()


def test_relative_data_dir_is_under_the_project_root() -> None:
    assert load_settings({"PLATFORM_DATA_DIR": "elsewhere"}).data_dir == PROJECT_ROOT / "elsewhere"


def test_abfss_lake_is_the_azure_adapter() -> None:
    uri = "abfss://lake@account.dfs.core.windows.net/platform"
    settings = load_settings({"LAKE_URI": uri + "/"})
    assert settings.lake.adapter is Adapter.AZURE
    assert settings.lake.uri == uri


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("PLATFORM_ENVIRONMENT", "staging", "must be one of"),
        ("PLATFORM_LOG_LEVEL", "loud", "must be one of"),
        ("LAKE_URI", "s3://bucket/lake", "must be a local path"),
        ("LAKE_URI", "abfss://nocontainer", "abfss://<container>@<account>"),
        ("PLATFORM_DATA_DIR", "bad\x00path", "must be a path"),
    ],
)
def test_malformed_setting_is_named(name: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value})
    assert raised.value.setting == name
    assert name in str(raised.value)
    assert fragment in str(raised.value)


def test_blank_values_take_the_default() -> None:
    assert load_settings({"PLATFORM_ENVIRONMENT": "  "}).environment == "local"


def test_log_level_sets_the_platform_loggers(tmp_path: Path) -> None:
    import logging

    from shared.bootstrap import PLATFORM_LOGGERS, bootstrap

    bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "PLATFORM_LOG_LEVEL": "warning"}))
    assert {logging.getLogger(n).level for n in PLATFORM_LOGGERS} == {logging.WARNING}
    bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path)}))
    assert {logging.getLogger(n).level for n in PLATFORM_LOGGERS} == {logging.INFO}
