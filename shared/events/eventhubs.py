"""The Event Hubs adapter of the publishing port: `azure-eventhub`'s async producer, an
identity-based connection (`DefaultAzureCredential` on `<Connection>__fullyQualifiedNamespace`),
size-checked `EventDataBatch`es per partition key, and the SDK's retries."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from shared.config import Adapter
from shared.events.errors import PublishFailed
from shared.events.publisher import EVENTS_HUB, OutgoingEvent
from shared.health import Readiness

CONTENT_TYPE = "application/cloudevents+json"
MAX_CONCURRENT_SENDS = 16


class BatchingProducer(Protocol):
    """The parts of `azure.eventhub.aio.EventHubProducerClient` the publisher uses."""

    async def create_batch(self, *, partition_key: str | None = None) -> Any: ...

    async def send_batch(self, batch: Any) -> None: ...

    async def close(self) -> None: ...


ProducerFactory = Callable[[str], BatchingProducer]


def group_by_partition_key(
    events: Sequence[OutgoingEvent],
) -> dict[str | None, list[OutgoingEvent]]:
    """Events by partition key, each group in publishing order (a batch has a single key)."""
    groups: dict[str | None, list[OutgoingEvent]] = {}
    for event in events:
        groups.setdefault(event.partition_key, []).append(event)
    return groups


def event_data(event: OutgoingEvent) -> Any:
    """The SDK's EventData of an event: structured-mode CloudEvents JSON."""
    from azure.eventhub import EventData

    data: Any = EventData(event.body)
    data.content_type = CONTENT_TYPE
    if event.properties:
        data.properties = dict(event.properties)
    return data


class EventHubsPublisher:
    """Publishes to Event Hubs. One producer client per hub, created once and reused."""

    def __init__(self, fully_qualified_namespace: str, producer_factory: ProducerFactory) -> None:
        self.fully_qualified_namespace = fully_qualified_namespace
        self._factory = producer_factory
        self._producers: dict[str, BatchingProducer] = {}
        self._sends = asyncio.Semaphore(MAX_CONCURRENT_SENDS)

    @classmethod
    def with_default_credential(cls, fully_qualified_namespace: str) -> EventHubsPublisher:
        """The production wiring: DefaultAzureCredential (managed identity in Azure)."""
        from azure.eventhub.aio import EventHubProducerClient
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential()

        def producer(hub: str) -> BatchingProducer:
            client: Any = EventHubProducerClient(
                fully_qualified_namespace=fully_qualified_namespace,
                eventhub_name=hub,
                credential=credential,
                retry_total=3,
                retry_backoff_factor=0.8,
                retry_backoff_max=30,
            )
            return client  # type: ignore[no-any-return]

        return cls(fully_qualified_namespace, producer)

    async def publish(self, hub: str, events: Sequence[OutgoingEvent]) -> None:
        """Send every event; a key's events stay in order in its partition. Raises
        PublishFailed if any batch could not be sent (the SDK has retried by then)."""
        if not events:
            return
        producer = self._producers.get(hub)
        if producer is None:
            producer = self._producers[hub] = self._factory(hub)
        groups = group_by_partition_key(events)
        results = await asyncio.gather(
            *(self._send_group(producer, key, group) for key, group in groups.items()),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            if isinstance(first, PublishFailed):
                raise first
            raise PublishFailed(f"Event Hubs {hub}: {type(first).__name__}: {first}") from first

    async def _send_group(
        self, producer: BatchingProducer, key: str | None, group: list[OutgoingEvent]
    ) -> None:
        async with self._sends:
            batch = await producer.create_batch(partition_key=key)
            for event in group:
                data = event_data(event)
                try:
                    batch.add(data)
                except ValueError:  # the batch is full: send it and start the next
                    if len(batch) == 0:
                        raise PublishFailed(
                            f"an event of {len(event.body)} bytes is over the Event Hubs limit"
                        ) from None
                    await producer.send_batch(batch)
                    batch = await producer.create_batch(partition_key=key)
                    batch.add(data)
            if len(batch):
                await producer.send_batch(batch)

    async def close(self) -> None:
        producers, self._producers = self._producers, {}
        for producer in producers.values():
            await producer.close()


class HubProperties(Protocol):
    """The part of `azure.eventhub.EventHubProducerClient` the probe uses."""

    def get_eventhub_properties(self) -> dict[str, Any]: ...


class EventHubsProbe:
    """Event Hubs: ready when the hub's properties can be read with the app's identity.

    The client (and its credential) is built on the first check and kept: a probe answers
    every few seconds, and a client per check would open a connection and fetch a token
    each time."""

    backend = "events"
    adapter = Adapter.AZURE

    def __init__(
        self,
        fully_qualified_namespace: str,
        hub: str = EVENTS_HUB,
        client_factory: Callable[[str, str], HubProperties] | None = None,
    ) -> None:
        self.fully_qualified_namespace = fully_qualified_namespace
        self.hub = hub
        self._factory = client_factory or _properties_client
        self._client: HubProperties | None = None
        self._lock = threading.Lock()

    def check(self) -> Readiness:
        where = f"{self.fully_qualified_namespace}/{self.hub}"
        try:
            with self._lock:
                if self._client is None:
                    self._client = self._factory(self.fully_qualified_namespace, self.hub)
                client = self._client
            properties = client.get_eventhub_properties()
        except Exception as error:  # any failure means the hub cannot take events
            return Readiness(False, f"{where}: {error}")
        partitions = len(properties.get("partition_ids", []))
        return Readiness(True, f"{where} ({partitions} partitions)")


def _properties_client(fully_qualified_namespace: str, hub: str) -> HubProperties:
    from azure.eventhub import EventHubProducerClient
    from azure.identity import DefaultAzureCredential

    client: Any = EventHubProducerClient(
        fully_qualified_namespace, hub, DefaultAzureCredential(), retry_total=0
    )
    return client  # type: ignore[no-any-return]
