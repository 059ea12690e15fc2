"""Wire the platform once per process: settings, then each port's adapter, chosen by settings."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared import __version__
from shared.config import Adapter, Settings, SettingsError, load_settings
from shared.health import ReadinessProbe
from shared.lakehouse.storage import LocalLakeProbe


@dataclass(frozen=True)
class Platform:
    """The services the triggers use. Tests build their own with `bootstrap(...)`."""

    settings: Settings
    probes: tuple[ReadinessProbe, ...]
    version: str = __version__
    started_at: float = field(default_factory=time.time)


def _lake_probe(settings: Settings) -> ReadinessProbe:
    if settings.lake.adapter is Adapter.LOCAL:
        return LocalLakeProbe(Path(settings.lake.uri))
    raise SettingsError("LAKE_URI", "the ADLS Gen2 (abfss://) lake adapter is not available yet")


def bootstrap(settings: Settings | None = None) -> Platform:
    """Build the platform from settings (loaded from the environment when not given)."""
    settings = settings or load_settings()
    probes: list[ReadinessProbe] = [_lake_probe(settings)]
    return Platform(settings=settings, probes=tuple(probes))


@functools.cache
def platform() -> Platform:
    """The process-wide platform, built on first use; clients inside it are reused."""
    return bootstrap()
