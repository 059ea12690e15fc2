"""App settings as Core Tools sees them: `local.settings.json` Values, then the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devhost.errors import StartupError, read_json_object

_REFERENCE = re.compile(r"%([^%]+)%")


class SettingsFileError(StartupError, ValueError):
    """`local.settings.json` exists but cannot be used."""


class UnresolvedSetting(KeyError):
    """A `%Name%` reference names a setting that is not defined."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"app setting {self.name!r} is referenced as %{self.name}% but is not defined"


def load_local_settings(script_root: Path) -> dict[str, str]:
    """Read `Values` from `local.settings.json` under the script root, if the file exists."""
    path = script_root / "local.settings.json"
    if not path.exists():
        return {}
    document = read_json_object(path, SettingsFileError)
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise SettingsFileError(f"{path}: 'Values' must be an object")
    settings: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, (dict, list)):
            raise SettingsFileError(f"{path}: Values.{key} must be a string, number or boolean")
        settings[str(key)] = _as_setting_text(value)
    return settings


def _as_setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


class AppSettings(Mapping[str, str]):
    """Environment variables over `local.settings.json` Values, as the Functions host merges them.

    Core Tools exports `Values` into the worker's environment without overriding variables
    that are already set, so the environment wins.
    """

    def __init__(self, values: Mapping[str, str], environ: Mapping[str, str] | None = None):
        merged = dict(values)
        merged.update(os.environ if environ is None else environ)
        self._values = merged
        self._from_file = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def export_to_environment(self) -> None:
        """Put file Values into `os.environ` where not already set, as Core Tools does."""
        for key, value in self._from_file.items():
            os.environ.setdefault(key, value)

    def resolve(self, text: str) -> str:
        """Replace every `%Name%` in text by the setting's value."""

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self._values:
                raise UnresolvedSetting(name)
            return self._values[name]

        return _REFERENCE.sub(substitute, text)

    def resolve_binding(self, binding: Mapping[str, Any]) -> dict[str, Any]:
        """Resolve `%Name%` in every string value of a binding, except its name and type."""
        resolved: dict[str, Any] = {}
        for key, value in binding.items():
            if isinstance(value, str) and key not in ("name", "type", "direction"):
                resolved[key] = self.resolve(value)
            else:
                resolved[key] = value
        return resolved


def poll_interval_s(
    settings: Mapping[str, str], name: str, default_ms: float, error: type[StartupError]
) -> float:
    """An app setting of milliseconds between polls (`DEVHOST_..._POLL_MS`), in seconds: 1 to
    60000 ms, `default_ms` when unset; `error` naming the setting otherwise."""
    raw = str(settings.get(name, "")).strip()
    if not raw:
        return default_ms / 1000
    try:
        milliseconds = float(raw)
    except ValueError:
        milliseconds = 0.0
    if not 1 <= milliseconds <= 60_000:
        raise error(f"app setting {name}={raw!r}: expected 1-60000 ms")
    return milliseconds / 1000
