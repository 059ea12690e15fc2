"""Durable timers: inbox rows held in memory until their visible time, then delivered."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable

from devhost.durable.store import InboxRow


class TimerQueue:
    """Holds future inbox rows and hands each to `deliver`, made visible, when it is due."""

    def __init__(self, deliver: Callable[[InboxRow], None]) -> None:
        self._deliver = deliver
        self._due: list[tuple[float, int]] = []
        self._rows: dict[int, InboxRow] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False

    def hold(self, row: InboxRow) -> None:
        """Keep the row until `row.visible_at`."""
        self._rows[row.id] = row
        heapq.heappush(self._due, (row.visible_at, row.id))
        self._wakeup.set()

    def cancel(self, inbox_id: int) -> None:
        """Forget a held row; its heap entry is skipped when it comes due."""
        self._rows.pop(inbox_id, None)

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver rows as they come due until stopped."""
        while not self._stopping:
            now = time.time()
            while self._due and self._due[0][0] <= now:
                _, row_id = heapq.heappop(self._due)
                row = self._rows.pop(row_id, None)
                if row is not None:
                    self._deliver(InboxRow(row.id, row.instance_id, 0.0, row.message))
            timeout = self._due[0][0] - now if self._due else None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass
