"""One trigger function fed from one monitored container's change feed, under one lease.

Delivery is at-least-once, as in Azure: the lease's continuation moves only after the
function has returned, so a crash replays the batch in hand. A function that raises does not
stop the feed: as Azure's trigger does, the lease moves past the failed batch, so those changes
are not delivered to that function again. With a retry policy (`@app.retry`) the same batch
is run again first, the feed waiting behind it, until it succeeds or the retries run out; if
the host stops during retries, the lease stays where it was, so the batch comes again after a
restart.

A missing monitored container does not stop the host: as Azure retries a trigger listener that
could not start, the consumer waits for the container to be created (logging it once), then
starts. Everything in a container created after the trigger started was written after "now",
so a new lease on it starts from its beginning even when `startFromBeginning` is false.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from devhost.cosmosdb.databases import Databases
from devhost.cosmosdb.documents import to_function_value
from devhost.cosmosdb.lease import Lease, LeaseKeeper, LeaseLost
from devhost.cosmosdb.options import TriggerOptions
from devhost.indexing import FunctionSpec
from devhost.invocation import FunctionFailed, HostShuttingDown, Invoker
from devhost.retry import Attempt, RetryOutcome, run_with_retries
from embedded.documents.model import ChangePage, DocumentStoreError, InvalidDocument
from embedded.documents.store import Container

log = logging.getLogger("devhost.cosmosdb")

T = TypeVar("T")
RETRY_DELAY_S = 1.0
# How many documents a start-from-time scan reads at a time.
SCAN_PAGE = 1000


@dataclass(frozen=True)
class FeedSource:
    """What a consumer reads and where it keeps its lease."""

    function: FunctionSpec
    options: TriggerOptions
    keeper: LeaseKeeper
    poll_s: float


class FeedConsumer:
    """Reads the change feed from the lease's continuation and invokes the function batch by
    batch, checkpointing the lease after each.

    `wake` is set when the container may have changed (an output binding of this devhost wrote
    to it); otherwise the feed is polled every `poll_s`. `stop()` stops reading; a batch in
    flight still finishes and is checkpointed, synchronously, before the host's drain can
    complete; then the lease is released. A batch waiting to be retried is abandoned at once,
    unacknowledged.
    """

    def __init__(
        self, source: FeedSource, databases: Databases, invoker: Invoker, io: Executor
    ) -> None:
        self.source = source
        self.function = source.function
        self.options = source.options
        self.wake = asyncio.Event()
        self._keeper = source.keeper
        self._databases = databases
        self._invoker = invoker
        self._io = io
        self._lease: Lease | None = None
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._busy = False  # running a batch (with its retries) or checkpointing it
        # The monitored container was missing when the trigger started, and no lease was taken.
        self._waited = False

    @property
    def lease(self) -> Lease | None:
        return self._lease

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, functools.partial(call, *args))

    async def run(self) -> None:
        """Consume until stopped; on an error, log it and resume from the lease after a pause."""
        while not self._stopping:
            try:
                monitored = await self._acquire()
                if monitored is None:
                    await self._pause(self.source.poll_s)
                    continue
                await self._consume(monitored)
            except LeaseLost as lost:
                log.warning("%s: %s; reading the lease again", self.function.name, lost)
                self._lease = None
                await self._pause(self.source.poll_s)
            except (DocumentStoreError, ValueError) as error:
                log.error("%s: change feed: %s", self.function.name, error)
                self._lease = None
                await self._pause(RETRY_DELAY_S)
            except Exception:
                # A consumer must not die silently: log, pause, and resume from the lease.
                log.exception("%s: change feed consumer failed", self.function.name)
                self._lease = None
                await self._pause(RETRY_DELAY_S)

    async def _acquire(self) -> Container | None:
        """The monitored container, with the lease taken; None while the container does not
        exist (or when the host stopped meanwhile)."""
        options = self.options
        monitored = await self._call(self._databases.existing, options.database, options.container)
        if monitored is None:
            if not self._waited:
                log.warning(
                    "%s: the monitored container %r (in database %r) does not exist; the "
                    "trigger starts once it is created",
                    self.function.name,
                    options.container,
                    options.database,
                )
                self._waited = True
            return None
        lease = await self._call(self._keeper.acquire, functools.partial(self._initial, monitored))
        self._lease, self._waited = lease, False
        if self._stopping:
            self._release()
            return None
        start = "the beginning" if lease.continuation is None else lease.continuation
        log.info("%s: lease %s acquired, reading from %s", self.function.name, lease.id, start)
        return monitored

    def _initial(self, monitored: Container) -> str | None:
        """Where a new lease starts: the beginning, a time, or the current end of the feed."""
        if self.options.start_from_beginning:
            return None
        start = self.options.start_from_time
        if self._waited and start is None:
            return None  # the container is younger than the trigger: all of it is new
        if start is None:
            return monitored.store.change_feed_end(monitored.spec.name)
        since = int(start.timestamp())
        continuation: str | None = None
        while True:
            page = monitored.changes(continuation, SCAN_PAGE)
            for index, change in enumerate(page.changes):
                written = change.document.get("_ts")
                if isinstance(written, int | float) and written >= since:
                    if index == 0:
                        return continuation
                    # Read on after the changes before this one, which are older.
                    return monitored.changes(continuation, index).continuation
            if not page.changes:
                return page.continuation
            continuation = page.continuation

    async def _consume(self, monitored: Container) -> None:
        while not self._stopping and self._lease is not None:
            # Clear before reading, so that a write landing during the read still wakes us.
            self.wake.clear()
            continuation = self._lease.continuation
            try:
                page = await self._call(monitored.changes, continuation, self.options.max_items)
            except ValueError as error:  # InvalidDocument too
                raise InvalidDocument(
                    f"lease {self._keeper.id!r}: cannot read on from its ContinuationToken "
                    f"{continuation!r} ({error}); delete the lease document to start again"
                ) from error
            if self._stopping:
                return
            if not page.changes:
                await self._pause(self.source.poll_s)
                continue
            self._busy = True
            try:
                finished = await self._dispatch(page)
                if finished:
                    await self._checkpoint(page.continuation)
            finally:
                self._busy = False
            if not finished:
                # The host stopped taking work: nothing more will run in this process.
                self._stopping = True
            if self._stopping:
                self._release()  # stop() came while the batch ran: with no await, as it left it
                return

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass

    async def _dispatch(self, page: ChangePage) -> bool:
        """Run the function on a batch (with its retries); False if the host stopped it."""
        documents = [change.document for change in page.changes]
        annotation = self.function.annotations.get(self.function.trigger.name)
        fields = {
            "database": self.options.database,
            "container": self.options.container,
            "lease": self._keeper.id,
            "documents": len(documents),
            "lsn": f"{page.changes[0].lsn}-{page.changes[-1].lsn}",
        }

        async def attempt(state: Attempt) -> BaseException | None:
            retry = {"retry_count": state.retry_count} if state.retry_count else {}
            try:
                await self._invoker.invoke(
                    self.function,
                    # Built afresh for each attempt, as the worker decodes the batch again.
                    to_function_value(documents, annotation),
                    retry_count=state.retry_count,
                    max_retry_count=state.max_retry_count,
                    retry_error=state.error,
                    log_fields={**fields, **retry},
                )
            except FunctionFailed as failure:
                return failure.error  # already logged by the invoker
            return None

        try:
            outcome = await run_with_retries(
                self.function.retry,
                attempt,
                function=self.function.name,
                stopping=self._stop_requested,
                log_fields=fields,
            )
        except HostShuttingDown:
            return False
        if outcome is RetryOutcome.FAILED:
            log.warning(
                "%s: the lease moves past %d changes (lsn %s) after the function failed, "
                "as in Azure; a retry policy (@app.retry) retries a failed batch first",
                self.function.name,
                len(documents),
                fields["lsn"],
            )
        return outcome is not RetryOutcome.STOPPED

    async def _checkpoint(self, continuation: str) -> None:
        lease = self._lease
        if lease is None:
            return
        if self._stopping:
            # The host is draining: save now, with no await, before the drain can finish.
            try:
                self._lease = self._keeper.checkpoint(lease, continuation)
            except (LeaseLost, DocumentStoreError) as error:
                log.error("%s: the last checkpoint failed: %s", self.function.name, error)
            return
        self._lease = await self._call(self._keeper.checkpoint, lease, continuation)

    def _release(self) -> None:
        """Give the lease up (synchronously: the host may be about to exit)."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            self._keeper.release(lease)
        except (LeaseLost, DocumentStoreError) as error:
            log.info("%s: lease %s not released: %s", self.function.name, lease.id, error)

    def stop(self) -> None:
        """Stop reading and retrying. The lease is released now unless a batch is running;
        then it is checkpointed and released when the function returns."""
        self._stopping = True
        self._stop_requested.set()
        self.wake.set()
        if not self._busy:
            self._release()
