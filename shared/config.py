"""The platform's typed settings: one object, built once, failing fast with the setting's name."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

PROJECT_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"setting {name}: {problem}")
        self.setting = name


class Adapter(StrEnum):
    LOCAL = "local"
    AZURE = "azure"


@dataclass(frozen=True)
class LakeSettings:
    """Where the Delta lakehouse lives: a local folder or `abfss://` on ADLS Gen2."""

    uri: str
    adapter: Adapter


@dataclass(frozen=True)
class Settings:
    """Everything the platform reads from its environment.

    Built by `load_settings()` from app settings (the environment, which Core Tools
    and the devhost fill from `local.settings.json`). Every field has an embedded default
    so `make run` needs no configuration, except where Azure needs a real value.
    """

    environment: str
    data_dir: Path
    lake: LakeSettings
    log_level: str
    extra: Mapping[str, str] = field(default_factory=dict)


def _text(source: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = source.get(name)
    if value is None or value.strip() == "":
        if default is None:
            raise SettingsError(name, "is required but not set")
        return default
    return value.strip()


def _choice(source: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _text(source, name, default)
    if value.lower() not in choices:
        raise SettingsError(name, f"must be one of {', '.join(choices)}, not {value!r}")
    return value.lower()


def _parsed(
    source: Mapping[str, str], name: str, default: str, parse: Callable[[str], T], expected: str
) -> T:
    value = _text(source, name, default)
    try:
        return parse(value)
    except (TypeError, ValueError) as error:
        raise SettingsError(name, f"must be {expected}, not {value!r}") from error


def _data_dir(source: Mapping[str, str]) -> Path:
    value = _text(source, "PLATFORM_DATA_DIR", ".data")
    if "\x00" in value:
        raise SettingsError("PLATFORM_DATA_DIR", "must be a path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _lake(source: Mapping[str, str], data_dir: Path) -> LakeSettings:
    uri = _text(source, "LAKE_URI", (data_dir / "lake").as_posix())
    if uri.startswith("abfss://"):
        rest = uri.removeprefix("abfss://")
        container, _, account = rest.partition("@")
        if not container or ".dfs." not in account:
            raise SettingsError(
                "LAKE_URI",
                "an ADLS Gen2 URI looks like abfss://<container>@<account>.dfs.core.windows.net/<path>",
            )
        return LakeSettings(uri=uri.rstrip("/"), adapter=Adapter.AZURE)
    if "://" in uri and not uri.startswith("file://"):
        raise SettingsError(
            "LAKE_URI", f"must be a local path, file:// or abfss:// URI, not {uri!r}"
        )
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    return LakeSettings(uri=path.as_posix(), adapter=Adapter.LOCAL)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment; raises SettingsError naming the bad setting."""
    source = os.environ if environ is None else environ
    data_dir = _data_dir(source)
    return Settings(
        environment=_choice(
            source, "PLATFORM_ENVIRONMENT", "local", ("local", "dev", "test", "prod")
        ),
        data_dir=data_dir,
        lake=_lake(source, data_dir),
        log_level=_choice(
            source, "PLATFORM_LOG_LEVEL", "info", ("debug", "info", "warning", "error")
        ),
    )
