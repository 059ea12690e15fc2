"""The Event Hubs publisher: batching per partition key, batch sizing, failures; live: opt-in."""

from __future__ import annotations

import os
from typing import Any

import pytest
from azure.eventhub import EventDataBatch
from azure.eventhub.exceptions import EventHubError

from shared.events.errors import PublishFailed
from shared.events.eventhubs import CONTENT_TYPE, EventHubsPublisher, group_by_partition_key
from shared.events.publisher import OutgoingEvent

pytestmark = pytest.mark.unit


class FakeProducer:
    """A producer that makes real `EventDataBatch`es (the SDK's own size accounting) with a
    small size limit, and records what is sent instead of sending it."""

    def __init__(self, max_size: int = 1024, fail_on_send: int | None = None) -> None:
        self.max_size = max_size
        self.sent: list[EventDataBatch] = []
        self.closed = False
        self._fail_on_send = fail_on_send

    async def create_batch(self, *, partition_key: str | None = None) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=self.max_size, partition_key=partition_key)

    async def send_batch(self, batch: EventDataBatch) -> None:
        if self._fail_on_send is not None and len(self.sent) == self._fail_on_send:
            raise EventHubError("the service is unavailable")
        self.sent.append(batch)

    async def close(self) -> None:
        self.closed = True


def bodies_of(batch: EventDataBatch) -> list[bytes]:
    return [b"".join(message.body) for message in batch._internal_events]  # type: ignore[arg-type]


def key_of(batch: EventDataBatch) -> Any:
    return batch._partition_key


def publisher(producer: FakeProducer) -> tuple[EventHubsPublisher, list[str]]:
    hubs: list[str] = []

    def factory(hub: str) -> FakeProducer:
        hubs.append(hub)
        return producer

    return EventHubsPublisher("ns.servicebus.windows.net", factory), hubs


def events(count: int, key: str | None, size: int = 100) -> list[OutgoingEvent]:
    return [OutgoingEvent(f"{key}-{i}".encode().ljust(size, b"."), key) for i in range(count)]


def test_events_are_grouped_by_partition_key_in_order() -> None:
    mixed = [OutgoingEvent(b"1", "a"), OutgoingEvent(b"2", None), OutgoingEvent(b"3", "a")]
    assert group_by_partition_key(mixed) == {"a": [mixed[0], mixed[2]], None: [mixed[1]]}


async def test_each_key_gets_its_own_batches() -> None:
    producer = FakeProducer()
    hub_publisher, hubs = publisher(producer)
    await hub_publisher.publish("events", events(2, "a") + events(2, "b") + events(1, None))
    await hub_publisher.publish("events", events(1, "c"))
    assert hubs == ["events"]  # one producer per hub, reused
    by_key = {key_of(b): bodies_of(b) for b in producer.sent}
    assert set(by_key) == {"a", "b", None, "c"}
    assert [body[:3] for body in by_key["a"]] == [b"a-0", b"a-1"]
    message: Any = producer.sent[0]._internal_events[0]
    assert message.content_type == CONTENT_TYPE


async def test_a_full_batch_is_sent_and_a_new_one_started() -> None:
    producer = FakeProducer(max_size=1024)
    hub_publisher, _ = publisher(producer)
    await hub_publisher.publish("events", events(25, "k", size=200))
    assert len(producer.sent) > 1
    assert all(b.size_in_bytes <= 1024 for b in producer.sent)
    sent = [body for batch in producer.sent for body in bodies_of(batch)]
    assert [body.split(b".")[0] for body in sent] == [f"k-{i}".encode() for i in range(25)]


async def test_an_event_over_the_limit_fails_the_publish() -> None:
    hub_publisher, _ = publisher(FakeProducer(max_size=300))
    with pytest.raises(PublishFailed, match="over the Event Hubs limit"):
        await hub_publisher.publish("events", events(1, "k", size=1000))


async def test_a_send_failure_is_a_publish_failure() -> None:
    hub_publisher, _ = publisher(FakeProducer(fail_on_send=0))
    with pytest.raises(PublishFailed, match="unavailable"):
        await hub_publisher.publish("events", events(3, "k"))


async def test_close_closes_the_producers() -> None:
    producer = FakeProducer()
    hub_publisher, _ = publisher(producer)
    await hub_publisher.publish("events", events(1, "k"))
    await hub_publisher.close()
    assert producer.closed


@pytest.mark.azure
@pytest.mark.skipif(
    not os.environ.get("EVENTHUB_TEST_NAMESPACE"),
    reason="set EVENTHUB_TEST_NAMESPACE (and sign in for DefaultAzureCredential) to run",
)
async def test_publishing_to_a_live_event_hub() -> None:
    live = EventHubsPublisher.with_default_credential(os.environ["EVENTHUB_TEST_NAMESPACE"])
    try:
        await live.publish(os.environ.get("EVENTHUB_TEST_HUB", "events"), events(3, "live-test"))
    finally:
        await live.close()
