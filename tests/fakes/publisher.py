"""An in-memory EventPublisher: what was published per hub, or the refusal of a hub that is down."""

from __future__ import annotations

from collections.abc import Sequence

from shared.events.errors import PublishFailed
from shared.events.publisher import OutgoingEvent


class FakePublisher:
    """The publishing port in memory; `fail` makes it refuse like an unavailable hub."""

    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, list[OutgoingEvent]]] = []
        self.fail = fail

    async def publish(self, hub: str, events: Sequence[OutgoingEvent]) -> None:
        if self.fail:
            raise PublishFailed("hub unavailable")
        self.published.append((hub, list(events)))

    async def close(self) -> None:
        pass
