"""A chat stream committed to one deployment: chunks pass through as they arrive, the usage
chunk is noted, and the deployment's breaker hears how the stream ended."""

from __future__ import annotations

import asyncio

from shared.ai.errors import StreamInterrupted
from shared.ai.pool import Lease
from shared.ai.port import ChatChunk, Usage
from shared.ai.sse_reader import RawChunks
from shared.ai.upstream import describe


class PooledChatStream:
    """`ChatStream` over the upstream's events (`RawChunks`). Once the first chunk has arrived
    nothing is retried: a failure raises `StreamInterrupted` (counted against the deployment);
    stopping early or being cancelled counts as a success, since the deployment was
    answering."""

    def __init__(self, upstream: RawChunks, first: ChatChunk, lease: Lease) -> None:
        self.deployment = lease.deployment.name
        self.model = lease.deployment.model
        self._upstream = upstream
        self._pending: ChatChunk | None = first
        self._lease = lease
        self._chunks = 0
        self._usage: Usage | None = None
        self._done = False

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def __aiter__(self) -> PooledChatStream:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._pending is not None:
            chunk, self._pending = self._pending, None
            return self._deliver(chunk)
        if self._done:
            raise StopAsyncIteration
        try:
            raw = await self._upstream.__anext__()
        except StopAsyncIteration:
            self._done = True
            self._lease.succeeded()
            raise
        except asyncio.CancelledError:
            await self._end()
            raise
        except Exception as error:
            self._done = True
            self._lease.failed()
            await self._upstream.close()
            raise StreamInterrupted(self.deployment, self._chunks, describe(error)) from error
        return self._deliver(ChatChunk(raw))

    def _deliver(self, chunk: ChatChunk) -> ChatChunk:
        self._chunks += 1
        usage = chunk.usage
        if usage is not None:
            self._usage = usage
        return chunk

    async def _end(self) -> None:
        if not self._done:
            self._done = True
            self._pending = None
            self._lease.succeeded()
            await self._upstream.close()

    async def aclose(self) -> None:
        await self._end()

    async def __aenter__(self) -> PooledChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._end()
