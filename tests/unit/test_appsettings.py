"""App settings: local.settings.json Values under the environment, and %Name% resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devhost.appsettings import (
    AppSettings,
    SettingsFileError,
    UnresolvedSetting,
    load_local_settings,
)

pytestmark = pytest.mark.unit


def write(tmp_path: Path, document: object) -> Path:
    (tmp_path / "local.settings.json").write_text(json.dumps(document))
    return tmp_path


def test_values_are_read_and_typed_as_text(tmp_path: Path) -> None:
    root = write(tmp_path, {"Values": {"A": "x", "N": 3, "B": True, "Z": None}})
    assert load_local_settings(root) == {"A": "x", "N": "3", "B": "true", "Z": ""}


def test_missing_file_means_no_values(tmp_path: Path) -> None:
    assert load_local_settings(tmp_path) == {}


@pytest.mark.parametrize(
    "content", ["{not json", "[]", '{"Values": []}', '{"Values": {"A": {"nested": 1}}}']
)
def test_malformed_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "local.settings.json").write_text(content)
    with pytest.raises(SettingsFileError, match="local.settings.json"):
        load_local_settings(tmp_path)


def test_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_bytes(b'{"Values": {"A": "\xff"}}')
    with pytest.raises(SettingsFileError):
        load_local_settings(tmp_path)


def test_environment_wins_over_the_file() -> None:
    settings = AppSettings({"A": "file", "B": "file"}, environ={"A": "env"})
    assert settings["A"] == "env"
    assert settings["B"] == "file"


def test_references_resolve_and_unknown_ones_are_named() -> None:
    settings = AppSettings({"HUB": "telemetry"}, environ={})
    assert settings.resolve("%HUB%-%HUB%") == "telemetry-telemetry"
    assert settings.resolve_binding({"name": "%HUB%", "eventHubName": "%HUB%"}) == {
        "name": "%HUB%",
        "eventHubName": "telemetry",
    }
    with pytest.raises(UnresolvedSetting, match="MISSING"):
        settings.resolve("%MISSING%")


@given(st.text(alphabet=st.characters(blacklist_characters="%"), min_size=1), st.text())
def test_resolution_substitutes_exactly(name: str, value: str) -> None:
    settings = AppSettings({name: value}, environ={})
    assert settings.resolve(f"a%{name}%b") == f"a{value}b"
