"""Drive one partition of the devhost's local event log from unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from embedded.eventlog.log import EventLog


def publish(event_log: EventLog, *bodies: str) -> None:
    """Append text events to partition 0 of `hub`."""
    event_log.append_batch("hub", [(b.encode(), None, None) for b in bodies], partition_id=0)


def checkpoint(event_log: EventLog) -> int | None:
    """The `$Default` consumer group's checkpoint on partition 0, if any."""
    saved = event_log.checkpoints("hub", "$Default").get(0)
    return saved.sequence_number if saved else None


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for the condition, polling the loop, or fail after the timeout."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
