"""App settings of the local Event Hubs: partition counts, retention, and namespaces."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

PARTITIONS_SETTING = "DEVHOST_EVENTHUB_PARTITIONS"
RETENTION_SETTING = "DEVHOST_EVENTHUB_RETENTION_HOURS"
DEFAULT_PARTITIONS = 4
DEFAULT_RETENTION_HOURS = 24.0
MAX_PARTITIONS = 1024
LOCAL_NAMESPACE = "local"

_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


class EventHubSettingError(ValueError):
    """An Event Hubs app setting holds a value the devhost cannot use; the message names it."""


@dataclass(frozen=True)
class LogSettings:
    """How hubs are created and how long events are kept.

    `hub_partitions` holds per-hub overrides (`DEVHOST_EVENTHUB_PARTITIONS__<hub>`), keyed
    by lower-case hub name. A hub's partition count is fixed when the hub is created.
    """

    default_partitions: int = DEFAULT_PARTITIONS
    hub_partitions: Mapping[str, int] = field(default_factory=dict)
    retention: timedelta = timedelta(hours=DEFAULT_RETENTION_HOURS)

    def partitions_for(self, hub: str) -> int:
        return self.hub_partitions.get(hub.lower(), self.default_partitions)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> LogSettings:
        """Read DEVHOST_EVENTHUB_PARTITIONS[__<hub>] and DEVHOST_EVENTHUB_RETENTION_HOURS."""
        default = _partition_count(settings, PARTITIONS_SETTING, DEFAULT_PARTITIONS)
        prefix = PARTITIONS_SETTING + "__"
        per_hub = {
            name[len(prefix) :].lower(): _partition_count(settings, name, default)
            for name in settings
            if name.startswith(prefix) and len(name) > len(prefix)
        }
        raw = settings.get(RETENTION_SETTING, "").strip()
        hours = DEFAULT_RETENTION_HOURS
        if raw:
            try:
                hours = float(raw)
            except ValueError:
                hours = -1.0
            if not hours > 0 or hours == float("inf"):
                raise EventHubSettingError(
                    f"app setting {RETENTION_SETTING}={raw!r}: expected a positive number of hours"
                )
        return cls(default, per_hub, timedelta(hours=hours))


def _partition_count(settings: Mapping[str, str], name: str, default: int) -> int:
    raw = settings.get(name, "").strip()
    if not raw:
        return default
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_PARTITIONS:
        raise EventHubSettingError(
            f"app setting {name}={raw!r}: expected a partition count from 1 to {MAX_PARTITIONS}"
        )
    return count


def namespace_for_connection(settings: Mapping[str, str], connection: str | None) -> str:
    """The namespace a binding's `connection` names, as the local log's file name.

    Reads `<connection>__fullyQualifiedNamespace` (identity-based connections) or the
    `Endpoint=sb://<namespace>.servicebus.windows.net/` of a connection string. Without
    either, or for a loopback endpoint (the Event Hubs emulator), the namespace is `local`.
    The trigger and any local publisher call this with the same settings, so they agree.
    """
    if not connection:
        return LOCAL_NAMESPACE
    host = settings.get(f"{connection}__fullyQualifiedNamespace", "").strip()
    if not host:
        value = settings.get(connection, "")
        match = re.search(r"(?i)(?:^|;)\s*Endpoint\s*=\s*(?:sb|amqps?|https?)://([^/;:]+)", value)
        host = match.group(1) if match else ""
    host = host.strip().lower()
    if not host or host in _LOOPBACK:
        return LOCAL_NAMESPACE
    namespace = host.split(".", 1)[0]
    if not _NAMESPACE.match(namespace):
        raise EventHubSettingError(
            f"connection {connection!r}: {host!r} does not name an Event Hubs namespace"
        )
    return namespace


def event_log_path(data_dir: str | Path, namespace: str | None = None) -> Path:
    """Where the log of a namespace lives: `<data_dir>/eventhubs/<namespace or local>.sqlite3`."""
    name = (namespace or LOCAL_NAMESPACE).lower()
    if not _NAMESPACE.match(name):
        raise EventHubSettingError(f"{namespace!r} is not a valid Event Hubs namespace name")
    return Path(data_dir) / "eventhubs" / f"{name}.sqlite3"
