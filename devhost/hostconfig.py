"""The parts of `host.json` the devhost honours."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.errors import StartupError, read_json_object


class HostConfigError(StartupError, ValueError):
    """`host.json` is missing, malformed, or holds a value of the wrong type."""


@dataclass(frozen=True)
class HostConfig:
    """host.json, with the extension sections kept as raw mappings for each trigger to read."""

    route_prefix: str = "api"
    extensions: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    def extension(self, name: str) -> Mapping[str, Any]:
        section = self.extensions.get(name, {})
        if not isinstance(section, Mapping):
            raise HostConfigError(f"host.json: extensions.{name} must be an object")
        return section


def load_host_config(script_root: Path) -> HostConfig:
    path = script_root / "host.json"
    if not path.exists():
        raise HostConfigError(f"{path}: not found; a function app needs host.json at its root")
    document = read_json_object(path, HostConfigError)
    extensions = document.get("extensions", {})
    if not isinstance(extensions, dict):
        raise HostConfigError(f"{path}: 'extensions' must be an object")
    http = extensions.get("http", {})
    if not isinstance(http, dict):
        raise HostConfigError(f"{path}: 'extensions.http' must be an object")
    prefix = http.get("routePrefix", "api")
    if not isinstance(prefix, str):
        raise HostConfigError(f"{path}: 'extensions.http.routePrefix' must be a string")
    return HostConfig(route_prefix=prefix.strip("/"), extensions=extensions, raw=document)
