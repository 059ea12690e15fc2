"""The cosmosDBTrigger listener and the cosmosDB input and output bindings of the devhost.

Databases are the embedded store's files, `<data dir>/documents/<databaseName>.sqlite3`, the
ones `python -m devhost documents` shows. Each trigger function reads its monitored
container's change feed under a lease document in the lease container (see `lease.py`); at
start-up a missing lease container is created when `createLeaseContainerIfNotExists`, and
otherwise stops the host with Azure's message. Functions sharing one lease (same container,
lease container and `leaseContainerPrefix`) compete for it in Azure, so that only one is
triggered; here the first of them runs and the others are listed with a warning.

Consumers wake at once on writes made through this devhost's output bindings and otherwise
poll every `feedPollDelay` ms when the binding sets it, else every `DEVHOST_COSMOSDB_POLL_MS`
(100 ms by default; Azure's default of 5 s would make local runs sluggish).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from devhost.appsettings import poll_interval_s as settings_poll_interval_s
from devhost.cosmosdb.consumer import FeedConsumer, FeedSource
from devhost.cosmosdb.databases import Databases
from devhost.cosmosdb.documents import check_annotation
from devhost.cosmosdb.inputs import InputReader
from devhost.cosmosdb.lease import (
    LeaseContainerError,
    LeaseKeeper,
    check_lease_container,
    lease_id,
)
from devhost.cosmosdb.options import (
    CosmosDBBindingError,
    TriggerOptions,
    account_host,
    where,
)
from devhost.cosmosdb.output import OutputSink
from devhost.extension import HostContext
from devhost.indexing import FunctionSpec
from embedded.documents.model import ContainerSpec, DocumentStoreError
from embedded.documents.store import Container

log = logging.getLogger("devhost.cosmosdb")

T = TypeVar("T")
POLL_SETTING = "DEVHOST_COSMOSDB_POLL_MS"
DEFAULT_POLL_MS = 100.0
LEASE_PARTITION_KEY_PATH = "/id"


class CosmosDBConfigError(CosmosDBBindingError):
    """A Cosmos DB trigger, its lease container or an app setting the devhost cannot use."""


def poll_interval_s(settings: Mapping[str, str]) -> float:
    """`DEVHOST_COSMOSDB_POLL_MS` in seconds: 1 to 60000 ms, 100 when unset."""
    return settings_poll_interval_s(settings, POLL_SETTING, DEFAULT_POLL_MS, CosmosDBConfigError)


class _Trigger:
    """A trigger function with its options, and the lease it keeps."""

    def __init__(self, function: FunctionSpec, settings: Mapping[str, str]) -> None:
        self.function = function
        self.options = TriggerOptions.from_function(function)
        binding = function.trigger
        check_annotation(function.annotations.get(binding.name), where(function, binding))
        account = account_host(settings, self.options.connection)
        self.lease_id = lease_id(
            self.options.lease_prefix, account, self.options.database, self.options.container
        )

    @property
    def lease_key(self) -> tuple[str, str, str]:
        return (self.options.lease_database, self.options.lease_container, self.lease_id)


class CosmosDBExtension:
    trigger_types = frozenset({"cosmosdbtrigger"})

    def __init__(self, context: HostContext, functions: list[FunctionSpec]) -> None:
        self._context = context
        self._poll_s = poll_interval_s(context.settings)
        self._databases = Databases(context.data_dir)
        # A pool of our own, so that busy sync functions cannot starve reads and checkpoints.
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cosmosdb")
        self._owner = f"devhost@{socket.gethostname()}:{os.getpid()}"
        triggers = [_Trigger(function, context.settings) for function in functions]
        self._triggers: list[_Trigger] = []
        self._shadowed: list[tuple[_Trigger, _Trigger]] = []
        owners: dict[tuple[str, str, str], _Trigger] = {}
        for trigger in triggers:
            owner = owners.setdefault(trigger.lease_key, trigger)
            if owner is trigger:
                self._triggers.append(trigger)
            else:
                self._shadowed.append((trigger, owner))
        self._consumers: list[FeedConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        # Any function may read and write documents (an HTTP one too): always registered.
        context.invoker.register_output(
            "cosmosDB", OutputSink(self._databases, self._io, self._written)
        )
        context.invoker.register_bound_input("cosmosDB", InputReader(self._databases, self._io))

    def routes(self) -> list[web.RouteDef]:
        return []

    def describe(self) -> list[str]:
        lines = []
        for trigger in self._triggers:
            options, function = trigger.options, trigger.function
            retry = f", {function.retry.describe()}" if function.retry is not None else ""
            poll = options.feed_poll_delay_ms or round(self._poll_s * 1000)
            lines.append(
                f"{function.name}: cosmosDBTrigger {options.database}/{options.container} "
                f"[lease {options.lease_database}/{options.lease_container}/{trigger.lease_id}, "
                f"batches of up to {options.max_items}, polled every {poll} ms, "
                f"new lease starts {options.start_description}{retry}]"
            )
        for trigger, owner in self._shadowed:
            lines.append(
                f"warning: {trigger.function.name} will not run: it shares the lease "
                f"{trigger.lease_id} with {owner.function.name}, and only one function is "
                "triggered per lease (as in Azure); give each its own leaseContainerPrefix"
            )
        return lines

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, functools.partial(call, *args))

    async def start(self) -> None:
        for trigger in self._triggers:
            leases = await self._call(self._lease_container, trigger)
            options = trigger.options
            poll_ms = options.feed_poll_delay_ms
            source = FeedSource(
                function=trigger.function,
                options=options,
                keeper=LeaseKeeper(
                    leases, trigger.lease_id, self._owner, {"function": trigger.function.name}
                ),
                poll_s=poll_ms / 1000 if poll_ms is not None else self._poll_s,
            )
            consumer = FeedConsumer(source, self._databases, self._context.invoker, self._io)
            self._consumers.append(consumer)
        for trigger, owner in self._shadowed:
            log.warning(
                "%s will not run: it shares the lease %s with %s; give each function its own "
                "leaseContainerPrefix",
                trigger.function.name,
                trigger.lease_id,
                owner.function.name,
            )
        for consumer in self._consumers:
            task = asyncio.create_task(consumer.run(), name=f"cosmosdb-{consumer.function.name}")
            self._tasks.append(task)

    def _lease_container(self, trigger: _Trigger) -> Container:
        """The lease container, created if the binding says so; else CosmosDBConfigError."""
        options = trigger.options
        spec = ContainerSpec(options.lease_container, LEASE_PARTITION_KEY_PATH)
        at = where(trigger.function, trigger.function.trigger)
        try:
            if options.create_lease_container:
                container = self._databases.container(options.lease_database, spec, create=True)
            else:
                found = self._databases.existing(options.lease_database, options.lease_container)
                if found is None:
                    raise CosmosDBConfigError(
                        f"{at}: the lease container {options.lease_container!r} (in database "
                        f"{options.lease_database!r}) does not exist. To automatically create "
                        "the lease container, set 'createLeaseContainerIfNotExists' to 'true'"
                    )
                container = found
            check_lease_container(container)
        except (DocumentStoreError, LeaseContainerError) as error:
            raise CosmosDBConfigError(f"{at}: {error}") from error
        return container

    async def stop(self) -> None:
        # Consumers finish the batch in hand, checkpoint it, release their lease and end.
        for consumer in self._consumers:
            consumer.stop()

    def _written(self, database: str, container: str) -> None:
        """An output binding wrote to a container: wake the triggers on it."""
        for consumer in self._consumers:
            options = consumer.options
            if options.database == database and options.container == container:
                consumer.wake.set()
