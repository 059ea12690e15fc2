"""A partition consumer: order, batching, at-least-once checkpoints, failures and stopping."""

from __future__ import annotations

import asyncio
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
from devhost.indexing import FunctionSpec, index_app
from devhost.invocation import Invoker
from embedded.eventlog.log import EventLog, event_log_path
from tests.eventhub_partition import checkpoint, publish, until

pytestmark = pytest.mark.unit

Handler = Callable[[Any], Awaitable[None]]


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog(event_log_path(tmp_path)) as opened:
        opened.ensure_hub("hub", 2)
        yield opened


def _function(
    handler: Handler, cardinality: func.Cardinality = func.Cardinality.MANY
) -> FunctionSpec:
    app = func.FunctionApp()

    @app.function_name("consume")
    @app.event_hub_message_trigger(
        arg_name="events", event_hub_name="hub", connection="Conn", cardinality=cardinality
    )
    async def consume(events: Any) -> None:
        await handler(events)

    return index_app(app, AppSettings({}, environ={}))[0]


def _consumer(
    event_log: EventLog,
    invoker: Invoker,
    io: ThreadPoolExecutor,
    function: FunctionSpec,
    **options: Any,
) -> PartitionConsumer:
    binding = TriggerBinding.from_function(function)
    return PartitionConsumer(
        function=function,
        binding=binding,
        options=EventHubsOptions(**{"max_batch_size": 3, **options}),
        event_log=event_log,
        source=PartitionSource("local", "hub", binding.consumer_group, 0, function.name),
        invoker=invoker,
        io=io,
    )


async def _stop(consumer: PartitionConsumer, task: asyncio.Task[None]) -> None:
    consumer.stop()
    await asyncio.wait_for(task, 5)


async def test_batches_run_in_order_and_are_checkpointed(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    seen: list[list[int | None]] = []

    async def handler(events: list[func.EventHubEvent]) -> None:
        seen.append([e.sequence_number for e in events])

    publish(event_log, *"abcdefg")
    consumer = _consumer(event_log, invoker, io, _function(handler))
    task = asyncio.create_task(consumer.run())
    await until(lambda: checkpoint(event_log) == 6)
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]
    publish(event_log, "h")
    consumer.wake.set()
    await until(lambda: checkpoint(event_log) == 7)
    assert seen[-1] == [7]
    await _stop(consumer, task)


async def test_the_checkpoint_waits_for_the_function_to_return(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(events: list[func.EventHubEvent]) -> None:
        started.set()
        await release.wait()

    publish(event_log, "a", "b")
    consumer = _consumer(event_log, invoker, io, _function(handler))
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.05)
    assert checkpoint(event_log) is None
    release.set()
    await until(lambda: checkpoint(event_log) == 1)
    await _stop(consumer, task)


async def test_a_failing_batch_is_passed_over_as_in_azure(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    seen: list[bytes] = []

    async def handler(events: list[func.EventHubEvent]) -> None:
        seen.extend(e.get_body() for e in events)
        if b"fail" in seen[-1]:
            raise RuntimeError("boom")

    publish(event_log, "fail")
    consumer = _consumer(event_log, invoker, io, _function(handler))
    task = asyncio.create_task(consumer.run())
    await until(lambda: checkpoint(event_log) == 0)
    publish(event_log, "after")
    consumer.wake.set()
    await until(lambda: checkpoint(event_log) == 1)
    assert seen == [b"fail", b"after"]
    await _stop(consumer, task)


async def test_consuming_resumes_after_the_checkpoint(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    seen: list[int | None] = []

    async def handler(events: list[func.EventHubEvent]) -> None:
        seen.extend(e.sequence_number for e in events)

    publish(event_log, *"abcdefg")
    event_log.set_checkpoint("hub", "$Default", 0, 4, 0)
    consumer = _consumer(event_log, invoker, io, _function(handler))
    task = asyncio.create_task(consumer.run())
    await until(lambda: checkpoint(event_log) == 6)
    assert seen == [5, 6]
    await _stop(consumer, task)


async def test_checkpoint_frequency_and_stop_saving_what_is_pending(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    seen: list[int | None] = []

    async def handler(events: list[func.EventHubEvent]) -> None:
        seen.extend(e.sequence_number for e in events)

    publish(event_log, *"abcdefg")
    consumer = _consumer(event_log, invoker, io, _function(handler), checkpoint_frequency=2)
    task = asyncio.create_task(consumer.run())
    await until(lambda: len(seen) == 7)
    await asyncio.sleep(0.05)
    assert checkpoint(event_log) == 5
    consumer.stop()
    assert checkpoint(event_log) == 6
    await asyncio.wait_for(task, 5)


async def test_stopping_lets_the_batch_in_flight_finish_and_checkpoint(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[int | None] = []

    async def handler(events: list[func.EventHubEvent]) -> None:
        started.set()
        await release.wait()
        seen.extend(e.sequence_number for e in events)

    publish(event_log, "a", "b")
    consumer = _consumer(event_log, invoker, io, _function(handler))
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 5)
    consumer.stop()
    publish(event_log, "c")
    release.set()
    await asyncio.wait_for(task, 5)
    assert seen == [0, 1]
    assert checkpoint(event_log) == 1


async def test_a_host_shutting_down_leaves_unrun_events_for_next_time(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    seen: list[int | None] = []

    async def handler(event: func.EventHubEvent) -> None:
        assert isinstance(event, func.EventHubEvent)
        seen.append(event.sequence_number)
        if event.sequence_number == 1:
            invoker.stop_accepting()

    publish(event_log, "a", "b", "c")
    function = _function(handler, func.Cardinality.ONE)
    consumer = _consumer(event_log, invoker, io, function)
    await asyncio.wait_for(consumer.run(), 5)
    assert seen == [0, 1]
    assert checkpoint(event_log) == 1


async def test_from_end_skips_events_older_than_the_listener(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    seen: list[bytes] = []

    async def handler(events: list[func.EventHubEvent]) -> None:
        seen.extend(e.get_body() for e in events)

    publish(event_log, "old", "older")
    consumer = _consumer(event_log, invoker, io, _function(handler), initial_offset="fromend")
    task = asyncio.create_task(consumer.run())
    await until(lambda: consumer.position == 1)
    publish(event_log, "new")
    consumer.wake.set()
    await until(lambda: checkpoint(event_log) == 2)
    assert seen == [b"new"]
    await _stop(consumer, task)


async def test_min_batch_size_waits_to_fill_a_batch_until_max_wait_time(
    event_log: EventLog, invoker: Invoker, io: ThreadPoolExecutor
) -> None:
    seen: list[list[int | None]] = []

    async def handler(events: list[func.EventHubEvent]) -> None:
        seen.append([e.sequence_number for e in events])

    options = {"max_batch_size": 4, "min_batch_size": 3, "max_wait_s": 0.3}
    consumer = _consumer(event_log, invoker, io, _function(handler), **options)
    task = asyncio.create_task(consumer.run())
    publish(event_log, "a")
    consumer.wake.set()
    await asyncio.sleep(0.05)
    publish(event_log, "b", "c", "d", "e")
    consumer.wake.set()
    await until(lambda: checkpoint(event_log) == 3)
    assert seen == [[0, 1, 2, 3]]
    started = asyncio.get_running_loop().time()
    await until(lambda: checkpoint(event_log) == 4)
    assert seen[-1] == [4]
    assert asyncio.get_running_loop().time() - started >= 0.2
    await _stop(consumer, task)
