"""A fixed number of asyncio workers draining one queue until a stop sentinel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WorkerPool(Generic[T]):
    """Hands each queued item to `handle`; `handle` must deal with its own errors."""

    def __init__(self, name: str, workers: int, handle: Callable[[T], Awaitable[None]]) -> None:
        self._name = name
        self._workers = workers
        self._handle = handle
        self._queue: asyncio.Queue[T | None] = asyncio.Queue()
        self._stopping = False

    def put(self, item: T) -> None:
        self._queue.put_nowait(item)

    def start(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._worker(), name=f"{self._name}-{index}")
            for index in range(self._workers)
        ]

    def stop(self) -> None:
        """Let each worker finish the item in hand, then return; queued items stay unhandled."""
        self._stopping = True
        for _ in range(self._workers):
            self._queue.put_nowait(None)

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None or self._stopping:
                return
            await self._handle(item)
