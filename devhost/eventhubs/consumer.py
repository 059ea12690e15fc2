"""One partition of a hub fed to one function: in order, checkpointing after each batch.

Delivery is at-least-once, as in Azure: the checkpoint moves only after the function has
returned, so a crash replays from the last checkpoint. A function that raises does not
stop the partition: Azure's trigger checkpoints past a failed batch too, so those events
are not delivered to that function again. With a retry policy (`@app.retry`) the same
batch is run again first, and the partition waits behind it, until it succeeds or the
retries run out; if the host stops during retries, the checkpoint stays where it was, so
the batch is delivered again after a restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from devhost.eventhubs.events import PartitionSource, to_event_list, to_single_event
from devhost.eventhubs.options import EventHubsOptions, TriggerBinding
from devhost.indexing import FunctionSpec
from devhost.invocation import FunctionFailed, HostShuttingDown, Invoker
from devhost.retry import Attempt, RetryOutcome, run_with_retries
from embedded.eventlog.log import EventLog, EventLogError, StoredEvent

log = logging.getLogger("devhost.eventhubs")

T = TypeVar("T")
RETRY_DELAY_S = 1.0


class PartitionConsumer:
    """Reads a partition from its checkpoint and invokes the function batch by batch.

    `wake` is set when new events may be there (an append in this process, or the poller
    seeing the partition grow). `stop()` stops reading; a batch in flight still finishes
    and is checkpointed, synchronously, before the host's drain can complete. A batch
    waiting to be retried is abandoned at once, unacknowledged.
    """

    def __init__(
        self,
        *,
        function: FunctionSpec,
        binding: TriggerBinding,
        options: EventHubsOptions,
        event_log: EventLog,
        source: PartitionSource,
        invoker: Invoker,
        io: Executor,
    ) -> None:
        self.function = function
        self.binding = binding
        self.options = options
        self.event_log = event_log
        self.source = source
        self.partition = source.partition
        self.wake = asyncio.Event()
        self.position = -1
        self._invoker = invoker
        self._io = io
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._invoking = False
        self._done: StoredEvent | None = None
        self._unsaved_batches = 0

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, functools.partial(call, *args))

    async def run(self) -> None:
        """Consume until stopped; on an error, log it and resume after a pause."""
        while not self._stopping:
            try:
                self.position = await self._call(self._start_position)
                await self._consume()
            except EventLogError as error:
                log.error("%s, partition %d: %s", self.source.hub, self.partition, error)
                await asyncio.sleep(RETRY_DELAY_S)
            except Exception:
                # A consumer must not die silently: log, pause, and resume from the checkpoint.
                log.exception("%s, partition %d: consumer failed", self.source.hub, self.partition)
                await asyncio.sleep(RETRY_DELAY_S)

    def _start_position(self) -> int:
        hub, group, partition = self.source.hub, self.binding.consumer_group, self.partition
        checkpoint = self.event_log.checkpoints(hub, group).get(partition)
        if checkpoint is not None:
            # After a failed checkpoint write, memory is ahead of the log.
            return max(checkpoint.sequence_number, self.position)
        if self.position >= 0:
            return self.position
        if self.options.initial_offset == "fromend":
            return self.event_log.last_sequence_numbers(hub)[partition]
        if self.options.initial_enqueued_time is not None:
            return self.event_log.last_sequence_before(
                hub, partition, self.options.initial_enqueued_time
            )
        return -1

    async def _consume(self) -> None:
        size = self.options.max_batch_size
        while not self._stopping:
            # Clear before reading, so an append landing during the read still wakes us.
            self.wake.clear()
            events = await self._call(
                self.event_log.read, self.source.hub, self.partition, self.position, size
            )
            if self._stopping:
                return
            if not events:
                await self.wake.wait()
                continue
            if self.binding.many and len(events) < self.options.min_batch_size:
                await self._fill(events)
                if self._stopping:
                    return
            finished = await self._dispatch(events)
            if not finished:
                # The host stopped taking work: nothing more will run in this process.
                self._stopping = True
                return

    async def _fill(self, events: list[StoredEvent]) -> None:
        """Wait up to maxWaitTime for minEventBatchSize events, as the v5 extension does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.max_wait_s
        while len(events) < self.options.min_batch_size and not self._stopping:
            self.wake.clear()
            more = await self._call(
                self.event_log.read,
                self.source.hub,
                self.partition,
                events[-1].sequence_number,
                self.options.max_batch_size - len(events),
            )
            if more:
                events.extend(more)
                continue
            try:
                await asyncio.wait_for(self.wake.wait(), deadline - loop.time())
            except TimeoutError:
                return

    async def _dispatch(self, events: list[StoredEvent]) -> bool:
        """Invoke the function on a batch; False if the host stopped before it all ran."""
        done: StoredEvent | None = None
        if self.binding.many:
            batch = functools.partial(
                to_event_list, events, self.source, as_string=self.binding.as_string
            )
            if await self._invoke(batch, events[0], events[-1]):
                done = events[-1]
        else:
            for event in events:
                single = functools.partial(
                    to_single_event, event, self.source, as_string=self.binding.as_string
                )
                if not await self._invoke(single, event, event):
                    break
                done = event
        if done is not None:
            await self._completed(done)
        return done is events[-1]

    async def _invoke(
        self, value: Callable[[], Any], first: StoredEvent, last: StoredEvent
    ) -> bool:
        """Run one execution (with its retries); False if the host stopped it unfinished.

        `value` builds the trigger value afresh for each attempt, as the worker converts the
        same binding data again for each.
        """
        fields = {
            "hub": self.source.hub,
            "consumer_group": self.binding.consumer_group,
            "partition": self.partition,
            "sequence_numbers": f"{first.sequence_number}-{last.sequence_number}",
            "events": last.sequence_number - first.sequence_number + 1,
        }

        async def attempt(state: Attempt) -> BaseException | None:
            retry = {"retry_count": state.retry_count} if state.retry_count else {}
            self._invoking = True
            try:
                await self._invoker.invoke(
                    self.function,
                    value(),
                    retry_count=state.retry_count,
                    max_retry_count=state.max_retry_count,
                    retry_error=state.error,
                    log_fields={**fields, **retry},
                )
            except FunctionFailed as failure:
                # Already logged by the invoker. Without retries left, Azure moves past the
                # batch; so do we.
                return failure.error
            finally:
                self._invoking = False
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
        return outcome is not RetryOutcome.STOPPED

    async def _completed(self, event: StoredEvent) -> None:
        self.position = event.sequence_number
        self._done = event
        self._unsaved_batches += 1
        if self._stopping:
            # The host is draining: save now, with no await, before the drain can finish.
            self.save_checkpoint()
        elif self._unsaved_batches >= self.options.checkpoint_frequency:
            await self._call(self.save_checkpoint)

    def save_checkpoint(self) -> None:
        """Record the last finished event as this consumer group's checkpoint."""
        done, self._unsaved_batches = self._done, 0
        if done is None:
            return
        try:
            self.event_log.set_checkpoint(
                self.source.hub,
                self.binding.consumer_group,
                self.partition,
                done.sequence_number,
                done.offset,
            )
        except EventLogError as error:
            # The batch is done but not recorded: it will be delivered again after a restart.
            self._unsaved_batches = 1
            log.error(
                "%s, partition %d: checkpoint failed: %s", self.source.hub, self.partition, error
            )

    def stop(self) -> None:
        """Stop reading and retrying. Progress pending is saved now unless a function is
        running; then it is saved when the function returns."""
        self._stopping = True
        self._stop_requested.set()
        self.wake.set()
        if not self._invoking and self._unsaved_batches:
            self.save_checkpoint()
