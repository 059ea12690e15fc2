"""Wire the platform once per process: settings, then each port's adapter, chosen by settings."""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared import __version__
from shared.config import Adapter, Settings, load_settings
from shared.events.pseudonymize import Pseudonymizer
from shared.events.services import EventServices, build_event_services
from shared.health import ReadinessProbe
from shared.lakehouse.access import LakeAccess, lake_access
from shared.lakehouse.lake_lock import hold_local_lake
from shared.lakehouse.storage import AdlsLakeProbe, LocalLakeProbe
from shared.privacy.log_scrub import install_log_scrubber


@dataclass(frozen=True)
class Platform:
    """The services the triggers use. Tests build their own with `bootstrap(...)`."""

    settings: Settings
    probes: tuple[ReadinessProbe, ...]
    events: EventServices
    version: str = __version__
    started_at: float = field(default_factory=time.time)


def _lake_probe(settings: Settings, access: LakeAccess) -> ReadinessProbe:
    if settings.lake.adapter is Adapter.LOCAL:
        return LocalLakeProbe(Path(settings.lake.uri))
    return AdlsLakeProbe(settings.lake.uri, access)


PLATFORM_LOGGERS = ("shared", "functions", "orchestrations")


def _set_log_level(level: str) -> None:
    """PLATFORM_LOG_LEVEL sets the platform's own loggers; the host's levels are its own."""
    for name in PLATFORM_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())


def bootstrap(settings: Settings | None = None) -> Platform:
    """Build the platform from settings (loaded from the environment when not given)."""
    settings = settings or load_settings()
    _set_log_level(settings.log_level)
    if settings.lake.adapter is Adapter.LOCAL:
        hold_local_lake(Path(settings.lake.uri))  # before anything writes to it
    pseudonymizer = Pseudonymizer(settings.pseudonym_key.encode("utf-8", "surrogatepass"))
    install_log_scrubber(pseudonymizer.scrub_text)  # before anything logs a value
    access = lake_access(settings.lake)
    events = build_event_services(settings, access, pseudonymizer, os.environ)
    probes: list[ReadinessProbe] = [_lake_probe(settings, access), events.probe]
    return Platform(settings=settings, probes=tuple(probes), events=events)


@functools.cache
def platform() -> Platform:
    """The process-wide platform, built on first use; clients inside it are reused."""
    return bootstrap()
