"""Server-sent events as OpenAI frames them: `data: {json}` events, `data: [DONE]` at the end,
an error as a final `data: {"error": {...}}` event, and comment lines to keep a slow stream's
connection open (proxies close connections idle for a minute or more)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")

DONE = b"data: [DONE]\n\n"
KEEP_ALIVE = b": keep-alive\n\n"


def event(data: Any) -> bytes:
    """One `data:` event. JSON has no raw newline, so one line always holds it."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class KeepAlive:
    """What `with_keep_alive` yields when nothing came for its interval."""


TICK = KeepAlive()


async def with_keep_alive(
    items: AsyncIterator[T], interval_s: float
) -> AsyncIterator[T | KeepAlive]:
    """`items`, with `TICK` whenever `interval_s` passes without one. The pending read is never
    cancelled by a tick (cancelling would break the upstream stream), only when the consumer
    stops (then it is cancelled and awaited)."""
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield TICK
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                pending = None
                return
            pending = None
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            try:
                await pending
            except (asyncio.CancelledError, StopAsyncIteration, Exception):
                pass
