"""The Event Hubs extension in process: config errors, output binding, wake-ups, retention."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.appsettings import AppSettings
from devhost.errors import StartupError
from devhost.eventhubs.extension import EventHubConfigError, EventHubExtension
from devhost.extension import HostContext
from devhost.hostconfig import HostConfig
from devhost.indexing import FunctionSpec, index_app
from devhost.invocation import Invoker
from devhost.keys import HostKeys
from embedded.eventlog.log import EventLog, LogSettings, event_log_path

pytestmark = pytest.mark.unit

MakeContext = Callable[..., HostContext]


@pytest.fixture
async def make_context(tmp_path: Path) -> AsyncIterator[MakeContext]:
    invokers: list[Invoker] = []

    def make(settings: dict[str, str] | None = None, **extension: Any) -> HostContext:
        invokers.append(Invoker(max_threads=2))
        return HostContext(
            script_root=tmp_path,
            data_dir=tmp_path / "data",
            settings=AppSettings(settings or {}, environ={}),
            host_config=HostConfig(extensions={"eventHubs": extension}),
            invoker=invokers[-1],
            keys=HostKeys(master="m", host={"default": "h"}),
            base_url="http://127.0.0.1:7071",
            log=logging.getLogger("test"),
        )

    yield make
    for invoker in invokers:
        invoker.close()


def _functions(received: list[list[bytes]]) -> list[FunctionSpec]:
    app = func.FunctionApp()

    @app.function_name("first")
    @app.event_hub_message_trigger(arg_name="events", event_hub_name="Hub", connection="Conn")
    async def first(events: list[func.EventHubEvent]) -> None:
        received.append([e.get_body() for e in events])

    @app.function_name("second")
    @app.event_hub_message_trigger(arg_name="events", event_hub_name="hub", connection="Conn")
    @app.event_hub_output(arg_name="out", event_hub_name="copies", connection="Conn")
    def second(events: list[func.EventHubEvent], out: func.Out[list[str]]) -> None:
        out.set([e.get_body().decode() + "!" for e in events])

    return index_app(app, AppSettings({}, environ={}))


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"DEVHOST_EVENTHUB_PARTITIONS": "lots"}, "DEVHOST_EVENTHUB_PARTITIONS"),
        ({"DEVHOST_EVENTHUB_POLL_MS": "0"}, "DEVHOST_EVENTHUB_POLL_MS"),
        ({"Conn__fullyQualifiedNamespace": "bad_name.example"}, "Conn"),
    ],
)
def test_bad_settings_stop_the_host_with_their_name(
    make_context: MakeContext, settings: dict[str, str], named: str
) -> None:
    with pytest.raises(EventHubConfigError, match=named) as raised:
        EventHubExtension(make_context(settings), _functions([]))
    assert isinstance(raised.value, StartupError)


def test_describe_warns_about_a_shared_consumer_group(make_context: MakeContext) -> None:
    lines = EventHubExtension(make_context(), _functions([])).describe()
    assert lines[0] == (
        "first: eventHubTrigger local/Hub [$Default, cardinality many, batches of up to 100]"
    )
    assert "share consumer group '$default' of local/hub" in lines[-1]


async def test_appends_in_process_wake_consumers_and_outputs_land_in_the_log(
    make_context: MakeContext,
) -> None:
    received: list[list[bytes]] = []
    context = make_context({"DEVHOST_EVENTHUB_POLL_MS": "60000"}, maxEventBatchSize=10)
    extension = EventHubExtension(context, _functions(received))
    await extension.start()
    await asyncio.sleep(0.2)  # let every consumer find its partition empty and wait
    try:
        with EventLog(event_log_path(context.data_dir)) as publisher:
            publisher.append_batch("HUB", [(b"a", None, None), (b"b", None, None)])
            # The poll interval is a minute: only the in-process notice can wake them now.
            async with asyncio.timeout(5):
                while sum(len(batch) for batch in received) < 2:
                    await asyncio.sleep(0.01)
                while sum(len(publisher.read("copies", p)) for p in range(4)) < 2:
                    await asyncio.sleep(0.01)
            copies = sorted(e.body for p in range(4) for e in publisher.read("copies", p))
        assert copies == [b"a!", b"b!"]
        assert sorted(b for batch in received for b in batch) == [b"a", b"b"]
    finally:
        await extension.stop()


async def test_expired_events_are_purged_in_the_background(make_context: MakeContext) -> None:
    context = make_context({"DEVHOST_EVENTHUB_RETENTION_HOURS": "0.0001"})
    path = event_log_path(context.data_dir, "other-namespace")
    with EventLog(path, settings=LogSettings(retention=timedelta(hours=1))) as event_log:
        event_log.append_batch("hub", [(b"x", None, None)] * 4)
        assert event_log.purge_expired(datetime.now(UTC)) == 0
        extension = EventHubExtension(context, [])
        await extension.start()
        try:
            async with asyncio.timeout(5):
                while any(event_log.read("hub", p) for p in range(4)):
                    await asyncio.sleep(0.05)
        finally:
            await extension.stop()
