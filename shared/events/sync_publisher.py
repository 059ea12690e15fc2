"""Publishing from synchronous code (the ingest function's thread): the local log appends at
once; Event Hubs' async producers run on one background event loop of their own, created on
first use, so that their clients stay on the loop they were made on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from shared.events.publisher import EventPublisher, LocalEventPublisher, OutgoingEvent

PUBLISH_TIMEOUT_S = 60.0


class SyncPublisher(Protocol):
    def publish_now(self, hub: str, events: Sequence[OutgoingEvent]) -> None: ...


class LoopPublisher:
    """An async publisher driven from any thread through its own background loop."""

    def __init__(self, make: Callable[[], EventPublisher]) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publisher: EventPublisher | None = None
        self._lock = threading.Lock()

    def publish_now(self, hub: str, events: Sequence[OutgoingEvent]) -> None:
        loop, publisher = self._started()
        done = asyncio.run_coroutine_threadsafe(publisher.publish(hub, events), loop)
        done.result(PUBLISH_TIMEOUT_S)

    def _started(self) -> tuple[asyncio.AbstractEventLoop, EventPublisher]:
        with self._lock:
            if self._loop is None or self._publisher is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="publisher", daemon=True).start()
                self._loop, self._publisher = loop, self._make()
            return self._loop, self._publisher


def sync_publisher(publisher: EventPublisher, make: Callable[[], EventPublisher]) -> SyncPublisher:
    """The local log itself, or a background loop's own publisher made by `make`."""
    if isinstance(publisher, LocalEventPublisher):
        return publisher
    return LoopPublisher(make)
