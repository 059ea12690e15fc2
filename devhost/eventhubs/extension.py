"""The eventHubTrigger listener and the eventHub output binding of the devhost.

Each trigger function gets one consumer per partition of its hub, all running concurrently.
Consumers wake at once on appends made in this process (the ingestion API, output
bindings) and within the poll interval (`DEVHOST_EVENTHUB_POLL_MS`, 50 ms by default) on
appends made by other processes. Expired events are purged in the background.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from aiohttp import web

from devhost.appsettings import poll_interval_s
from devhost.errors import StartupError
from devhost.eventhubs.consumer import PartitionConsumer
from devhost.eventhubs.events import PartitionSource
from devhost.eventhubs.options import EventHubsOptions, TriggerBinding
from devhost.eventhubs.output import OutputValueError, output_events
from devhost.extension import HostContext
from devhost.indexing import BindingSpec, FunctionSpec
from embedded.eventlog.log import EventLog, EventLogError, watch_appends
from embedded.eventlog.settings import (
    EventHubSettingError,
    LogSettings,
    event_log_path,
    namespace_for_connection,
)

log = logging.getLogger("devhost.eventhubs")

T = TypeVar("T")
POLL_SETTING = "DEVHOST_EVENTHUB_POLL_MS"
DEFAULT_POLL_MS = 50.0
MAX_PURGE_INTERVAL_S = 300.0


class EventHubConfigError(StartupError):
    """An Event Hubs binding, app setting or log the devhost cannot use; the message says which."""


def _poll_interval_s(settings: Any) -> float:
    return poll_interval_s(settings, POLL_SETTING, DEFAULT_POLL_MS, EventHubConfigError)


class EventHubExtension:
    trigger_types = frozenset({"eventhubtrigger"})

    def __init__(self, context: HostContext, functions: list[FunctionSpec]) -> None:
        self._context = context
        settings = context.settings
        try:
            self._log_settings = LogSettings.from_settings(settings)
            self._triggers = [
                (function, binding, namespace_for_connection(settings, binding.connection))
                for function in functions
                for binding in [TriggerBinding.from_function(function)]
            ]
        except EventHubSettingError as error:
            raise EventHubConfigError(str(error)) from error
        self._poll_s = _poll_interval_s(settings)
        self._options = EventHubsOptions.from_section(context.host_config.extension("eventHubs"))
        self._logs: dict[str, EventLog] = {}
        self._logs_lock = threading.Lock()
        self._consumers: list[PartitionConsumer] = []
        self._consumer_tasks: list[asyncio.Task[None]] = []
        self._background: list[asyncio.Task[None]] = []
        self._unwatch: list[Callable[[], None]] = []
        # A pool of our own, so that busy sync functions cannot starve reads and checkpoints.
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="eventhubs")
        context.invoker.register_output("eventHub", self.deliver_output)

    def routes(self) -> list[web.RouteDef]:
        return []

    def describe(self) -> list[str]:
        lines = []
        groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for function, binding, namespace in self._triggers:
            cardinality = "many" if binding.many else "one"
            retry = f", {function.retry.describe()}" if function.retry is not None else ""
            lines.append(
                f"{function.name}: eventHubTrigger {namespace}/{binding.hub} "
                f"[{binding.consumer_group}, cardinality {cardinality}, "
                f"batches of up to {self._options.max_batch_size}{retry}]"
            )
            key = (namespace, binding.hub.lower(), binding.consumer_group.lower())
            groups[key].append(function.name)
        for (namespace, hub, group), names in groups.items():
            if len(names) > 1:
                lines.append(
                    f"warning: {', '.join(names)} share consumer group {group!r} of "
                    f"{namespace}/{hub} and its checkpoints; give each its own consumer group"
                )
        return lines

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, functools.partial(call, *args))

    def _log_for(self, namespace: str) -> EventLog:
        with self._logs_lock:
            event_log = self._logs.get(namespace)
            if event_log is None:
                path = event_log_path(self._context.data_dir, namespace)
                event_log = self._logs[namespace] = EventLog(path, settings=self._log_settings)
            return event_log

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for function, binding, namespace in self._triggers:
            try:
                event_log = await self._call(self._log_for, namespace)
                partitions = await self._call(event_log.ensure_hub, binding.hub)
            except EventLogError as error:
                raise EventHubConfigError(f"function {function.name!r}: {error}") from error
            for partition in range(partitions):
                source = PartitionSource(
                    namespace, binding.hub, binding.consumer_group, partition, function.name
                )
                self._consumers.append(
                    PartitionConsumer(
                        function=function,
                        binding=binding,
                        options=self._options,
                        event_log=event_log,
                        source=source,
                        invoker=self._context.invoker,
                        io=self._io,
                    )
                )
        for event_log in {c.event_log for c in self._consumers}:
            listener = functools.partial(self._on_append, loop, event_log)
            self._unwatch.append(watch_appends(event_log.path, listener))
        for consumer in self._consumers:
            self._consumer_tasks.append(asyncio.create_task(consumer.run()))
        if self._consumers:
            self._background.append(asyncio.create_task(self._poll()))
        self._background.append(asyncio.create_task(self._purge_periodically()))

    async def stop(self) -> None:
        for unwatch in self._unwatch:
            unwatch()
        # Consumers finish the batch in hand, checkpoint it and end on their own.
        for consumer in self._consumers:
            consumer.stop()
        for task in self._background:
            task.cancel()

    # waking consumers ------------------------------------------------------------------

    def _on_append(
        self,
        loop: asyncio.AbstractEventLoop,
        event_log: EventLog,
        hub: str,
        partitions: frozenset[int],
    ) -> None:
        try:
            loop.call_soon_threadsafe(self._wake, event_log, hub, partitions)
        except RuntimeError:
            pass  # the loop has closed: the host is gone

    def _wake(self, event_log: EventLog, hub: str, partitions: frozenset[int]) -> None:
        for consumer in self._consumers:
            if (
                consumer.event_log is event_log
                and consumer.partition in partitions
                and consumer.source.hub.lower() == hub
            ):
                consumer.wake.set()

    def _tails(self) -> dict[tuple[int, str], list[int]]:
        tails: dict[tuple[int, str], list[int]] = {}
        for consumer in self._consumers:
            key = (id(consumer.event_log), consumer.source.hub.lower())
            if key not in tails:
                try:
                    tails[key] = consumer.event_log.last_sequence_numbers(consumer.source.hub)
                except EventLogError as error:
                    log.warning("polling %s failed: %s", consumer.source.hub, error)
                    tails[key] = []
        return tails

    async def _poll(self) -> None:
        """Catch appends made by other processes, which no in-process listener hears."""
        while True:
            await asyncio.sleep(self._poll_s)
            tails = await self._call(self._tails)
            for consumer in self._consumers:
                tail = tails.get((id(consumer.event_log), consumer.source.hub.lower()), [])
                if consumer.partition < len(tail) and tail[consumer.partition] > consumer.position:
                    consumer.wake.set()

    # retention -------------------------------------------------------------------------

    def _purge(self) -> None:
        folder = self._context.data_dir / "eventhubs"
        for path in sorted(folder.glob("*.sqlite3")) if folder.is_dir() else []:
            try:
                deleted = self._log_for(path.stem).purge_expired()
            except (EventLogError, EventHubSettingError) as error:
                log.warning("purging %s failed: %s", path, error)
                continue
            if deleted:
                log.info("purged %d expired events from %s", deleted, path)

    async def _purge_periodically(self) -> None:
        retention = self._log_settings.retention
        interval = min(
            max(retention / 10, timedelta(seconds=1)).total_seconds(), MAX_PURGE_INTERVAL_S
        )
        while True:
            try:
                await self._call(self._purge)
            except Exception:
                log.exception("purging expired events failed")
            await asyncio.sleep(interval)

    # the eventHub output binding -------------------------------------------------------

    async def deliver_output(
        self, binding: BindingSpec, function: FunctionSpec, value: Any
    ) -> None:
        """Append what the function set on an eventHub output binding to its hub."""
        hub = binding.get("eventHubName") or binding.get("path")
        if not isinstance(hub, str) or not hub:
            raise OutputValueError(f"output binding {binding.name!r}: eventHubName is required")
        events = output_events(value, binding.name)
        if not events:
            return
        namespace = namespace_for_connection(self._context.settings, binding.get("connection"))
        event_log = await self._call(self._log_for, namespace)
        await self._call(event_log.append_batch, hub, events)
