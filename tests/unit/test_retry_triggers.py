"""Retry policies applied by the Event Hubs consumer and the timer extension, in process."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.appsettings import AppSettings
from devhost.eventhubs.consumer import PartitionConsumer
from devhost.eventhubs.events import PartitionSource
from devhost.eventhubs.options import EventHubsOptions, TriggerBinding
from devhost.extension import HostContext
from devhost.hostconfig import HostConfig
from devhost.indexing import FunctionSpec, index_app
from devhost.invocation import Invoker
from devhost.keys import HostKeys
from devhost.retry import FIXED_DELAY, RetryPolicy
from devhost.timer.extension import TimerExtension
from embedded.eventlog.log import EventLog, event_log_path
from tests.eventhub_partition import checkpoint, publish, until

pytestmark = pytest.mark.unit

Handler = Callable[[Any, func.Context], Awaitable[None]]
FAST_FOREVER = RetryPolicy(FIXED_DELAY, -1, delay_s=0.02)


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog(event_log_path(tmp_path)) as opened:
        opened.ensure_hub("hub", 1)
        yield opened


def _hub_function(
    handler: Handler,
    retry: RetryPolicy | None,
    cardinality: func.Cardinality = func.Cardinality.MANY,
) -> FunctionSpec:
    app = func.FunctionApp()

    @app.function_name("consume")
    @app.event_hub_message_trigger(
        arg_name="events", event_hub_name="hub", connection="Conn", cardinality=cardinality
    )
    async def consume(events: Any, context: func.Context) -> None:
        await handler(events, context)

    [function] = index_app(app, AppSettings({}, environ={}))
    # Policies from the decorator are whole seconds; sub-second ones keep these tests fast.
    return dataclasses.replace(function, retry=retry)


def _consumer(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor, function: FunctionSpec
) -> PartitionConsumer:
    binding = TriggerBinding.from_function(function)
    return PartitionConsumer(
        function=function,
        binding=binding,
        options=EventHubsOptions(max_batch_size=2),
        event_log=event_log,
        source=PartitionSource("local", "hub", binding.consumer_group, 0, function.name),
        invoker=invoker,
        io=io,
    )


class FailsFirst:
    """A handler that raises on its first `failures` calls for batches holding `poison`."""

    def __init__(self, failures: int, poison: bytes = b"bad") -> None:
        self.failures = failures
        self.poison = poison
        self.calls: list[tuple[list[int | None], int, int]] = []
        self.objects: list[int] = []

    async def __call__(self, events: Any, context: func.Context) -> None:
        batch = events if isinstance(events, list) else [events]
        retry = context.retry_context
        self.calls.append(
            ([e.sequence_number for e in batch], retry.retry_count, retry.max_retry_count)
        )
        self.objects.append(id(batch[0]))
        failed_so_far = sum(1 for seqs, _, _ in self.calls[:-1] if seqs == self.calls[-1][0])
        if any(self.poison in e.get_body() for e in batch) and failed_so_far < self.failures:
            raise RuntimeError("not yet")


async def test_a_failing_batch_is_redelivered_whole_until_it_succeeds(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    handler = FailsFirst(failures=3)
    publish(event_log, "ok", "bad", "next", "last")
    consumer = _consumer(event_log, invoker, io, _hub_function(handler, FAST_FOREVER))
    task = asyncio.create_task(consumer.run())
    await until(lambda: checkpoint(event_log) == 3)
    assert handler.calls == [
        ([0, 1], 0, -1),
        ([0, 1], 1, -1),
        ([0, 1], 2, -1),
        ([0, 1], 3, -1),
        ([2, 3], 0, -1),
    ]
    # Each attempt gets the same events, converted afresh as the worker would.
    assert len(set(handler.objects[:4])) == 4
    consumer.stop()
    await asyncio.wait_for(task, 5)


async def test_the_checkpoint_and_later_batches_wait_while_retries_are_pending(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    handler = FailsFirst(failures=10**9)
    publish(event_log, "ok", "fine", "bad", "x", "after")
    consumer = _consumer(event_log, invoker, io, _hub_function(handler, FAST_FOREVER))
    task = asyncio.create_task(consumer.run())
    await until(lambda: len(handler.calls) >= 6)
    assert checkpoint(event_log) == 1
    assert {tuple(seqs) for seqs, _, _ in handler.calls[1:]} == {(2, 3)}
    consumer.stop()
    await asyncio.wait_for(task, 5)
    # Stopped mid-retries: the batch stays unacknowledged, for redelivery after a restart.
    assert checkpoint(event_log) == 1


async def test_after_the_last_retry_the_batch_is_passed_over(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    handler = FailsFirst(failures=10**9)
    publish(event_log, "bad", "x", "after")
    policy = RetryPolicy(FIXED_DELAY, 2, delay_s=0.01)
    consumer = _consumer(event_log, invoker, io, _hub_function(handler, policy))
    task = asyncio.create_task(consumer.run())
    await until(lambda: checkpoint(event_log) == 2)
    assert [(seqs, count) for seqs, count, _ in handler.calls] == [
        ([0, 1], 0),
        ([0, 1], 1),
        ([0, 1], 2),
        ([2], 0),
    ]
    consumer.stop()
    await asyncio.wait_for(task, 5)


async def test_stopping_during_a_retry_wait_saves_earlier_progress_only(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    handler = FailsFirst(failures=10**9)
    publish(event_log, "a", "b", "bad", "c")
    function = _hub_function(handler, RetryPolicy(FIXED_DELAY, -1, delay_s=60.0))
    binding = TriggerBinding.from_function(function)
    consumer = PartitionConsumer(
        function=function,
        binding=binding,
        options=EventHubsOptions(max_batch_size=2, checkpoint_frequency=5),
        event_log=event_log,
        source=PartitionSource("local", "hub", binding.consumer_group, 0, function.name),
        invoker=invoker,
        io=io,
    )
    task = asyncio.create_task(consumer.run())
    await until(lambda: len(handler.calls) == 2)
    assert checkpoint(event_log) is None  # every 5 batches: the first is not saved yet
    started = time.monotonic()
    consumer.stop()
    assert checkpoint(event_log) == 1
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 2  # the wait was 30 s or more
    assert checkpoint(event_log) == 1


async def test_cardinality_one_retries_the_failing_event_and_keeps_order(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    handler = FailsFirst(failures=2)
    publish(event_log, "a", "bad", "c")
    function = _hub_function(handler, FAST_FOREVER, func.Cardinality.ONE)
    consumer = _consumer(event_log, invoker, io, function)
    task = asyncio.create_task(consumer.run())
    await until(lambda: checkpoint(event_log) == 2)
    assert [(seqs[0], count) for seqs, count, _ in handler.calls] == [
        (0, 0),
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 0),
    ]
    consumer.stop()
    await asyncio.wait_for(task, 5)


async def test_without_a_policy_the_retry_context_is_empty(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    handler = FailsFirst(failures=10**9)
    publish(event_log, "bad", "x", "y")
    consumer = _consumer(event_log, invoker, io, _hub_function(handler, None))
    task = asyncio.create_task(consumer.run())
    await until(lambda: checkpoint(event_log) == 2)
    assert handler.calls == [([0, 1], 0, 0), ([2], 0, 0)]
    consumer.stop()
    await asyncio.wait_for(task, 5)


# the timer extension ---------------------------------------------------------------------


def _timer_context(tmp_path: Path, invoker: Invoker) -> HostContext:
    return HostContext(
        script_root=tmp_path,
        data_dir=tmp_path / "data",
        settings=AppSettings({}, environ={}),
        host_config=HostConfig(),
        invoker=invoker,
        keys=HostKeys(master="master", host={"default": "host"}),
        base_url="http://127.0.0.1:0",
        log=logging.getLogger("devhost.test"),
    )


def _timer_function(handler: Callable[..., Any], retry: RetryPolicy) -> list[FunctionSpec]:
    app = func.FunctionApp()
    app.function_name("tick")(
        app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)(handler)
    )
    return [dataclasses.replace(f, retry=retry) for f in index_app(app, AppSettings({}))]


async def test_a_timer_with_a_policy_is_retried(tmp_path: Path, invoker: Invoker) -> None:
    runs: list[tuple[int, int, bool]] = []

    def tick(timer: func.TimerRequest, context: func.Context) -> None:
        retry = context.retry_context
        runs.append((retry.retry_count, retry.max_retry_count, timer.past_due))
        if len(runs) < 3:
            raise RuntimeError("not yet")

    policy = RetryPolicy(FIXED_DELAY, 4, delay_s=0.02)
    extension = TimerExtension(_timer_context(tmp_path, invoker), _timer_function(tick, policy))
    assert "retry fixed_delay: up to 4 retries, 00:00:00.020 apart" in extension.describe()[0]
    await extension.start()
    await until(lambda: len(runs) == 3)
    await asyncio.sleep(0.1)
    assert runs == [(0, 4, False), (1, 4, False), (2, 4, False)]
    await extension.stop()
    assert await invoker.drain(5)


async def test_stopping_ends_a_timer_s_retries(tmp_path: Path, invoker: Invoker) -> None:
    runs: list[int] = []

    def tick(timer: func.TimerRequest, context: func.Context) -> None:
        runs.append(context.retry_context.retry_count)
        raise RuntimeError("always")

    policy = RetryPolicy(FIXED_DELAY, -1, delay_s=60.0)
    extension = TimerExtension(_timer_context(tmp_path, invoker), _timer_function(tick, policy))
    await extension.start()
    await until(lambda: len(runs) == 1)
    [timer] = extension.timers
    await until(lambda: invoker.in_flight == 0)
    started = time.monotonic()
    await extension.stop()
    assert timer.task is not None
    await asyncio.wait_for(timer.task, 5)
    assert time.monotonic() - started < 2  # the wait was 30 s or more
    assert runs == [0]
