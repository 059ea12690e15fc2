"""The event publishing port, and its local adapter: the devhost's durable event log.

`publish` returns only once the events are durable in the hub, so an HTTP 202 after it
means no accepted event can be lost. The Event Hubs adapter is in `shared.events.eventhubs`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from shared.config import Adapter
from shared.events.errors import PublishFailed
from shared.health import Readiness

if TYPE_CHECKING:
    from embedded.eventlog.log import EventLog

EVENTS_HUB = "events"
INGEST_CONSUMER_GROUP = "$Default"
MAX_PARTITION_KEY_CHARS = 128  # Event Hubs refuses longer partition keys


class OutgoingEvent(NamedTuple):
    """One event to publish: its body, the partition key that orders it, and properties."""

    body: bytes
    partition_key: str | None = None
    properties: Mapping[str, str] | None = None


class EventPublisher(Protocol):
    """Publishes events to a hub; durable on return, PublishFailed otherwise."""

    async def publish(self, hub: str, events: Sequence[OutgoingEvent]) -> None: ...

    async def close(self) -> None: ...


class LocalEventPublisher:
    """Appends to the devhost's local Event Hubs log (SQLite, fsynced on every batch).

    The log is opened on first use, so that building the platform touches no file.
    """

    def __init__(self, open_log: Callable[[], EventLog]) -> None:
        self._open_log = open_log
        self._log: EventLog | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_settings(
        cls, data_dir: Path, app_settings: Mapping[str, str], connection: str
    ) -> LocalEventPublisher:
        """The log the devhost's trigger on `connection` reads, under `data_dir`."""
        from embedded.eventlog.log import EventLog

        settings = dict(app_settings)
        return cls(lambda: EventLog.for_data_dir(data_dir, settings, connection))

    @property
    def log(self) -> EventLog:
        with self._lock:
            if self._log is None:
                self._log = self._open_log()
            return self._log

    async def publish(self, hub: str, events: Sequence[OutgoingEvent]) -> None:
        if not events:
            return
        await asyncio.to_thread(self.publish_now, hub, events)

    def publish_now(self, hub: str, events: Sequence[OutgoingEvent]) -> None:
        """Append synchronously (for sync callers and tests)."""
        from embedded.eventlog.log import EventLogError

        try:
            self.log.append_batch(hub, events)
        except (EventLogError, OSError) as error:
            raise PublishFailed(f"the local event log refused the batch: {error}") from error

    async def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None


@dataclass(frozen=True)
class LocalEventsProbe:
    """The local event log: ready when its hub can be opened."""

    publisher: LocalEventPublisher
    hub: str = EVENTS_HUB
    backend: str = "events"
    adapter: Adapter = Adapter.LOCAL

    def check(self) -> Readiness:
        from embedded.eventlog.log import EventLogError

        try:
            log = self.publisher.log
            partitions = log.ensure_hub(self.hub)
        except (EventLogError, OSError) as error:
            return Readiness(False, f"the local event log cannot be opened: {error}")
        return Readiness(True, f"{log.path} ({self.hub}: {partitions} partitions)")
