"""Stored events to `func.EventHubEvent`, with the trigger metadata the Python worker supplies.

The Functions host sends Event Hubs binding data (`PartitionContext`, `SequenceNumberArray`,
`SystemPropertiesArray`, ... for cardinality many; `SequenceNumber`, `SystemProperties`,
... for one) and the worker turns it into `EventHubEvent` objects. The devhost builds the
same objects directly, because the worker's converter parses each enqueued time with
`strptime` (about 70 µs an event). The metadata mapping is built lazily, on first use of
`event.metadata`, as a mapping of `meta.Datum` exactly like the worker's.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions import meta

from devhost.eventhubs.records import PropertyValue, StoredEvent


@dataclass(frozen=True)
class PartitionSource:
    """Where a batch comes from, as the binding's `PartitionContext` describes it."""

    namespace: str
    hub: str
    consumer_group: str
    partition: int
    function_name: str


class _Collection:
    """The protobuf collection value of a `collection_*` Datum (`.string`, `.sint64`)."""

    def __init__(self, **values: list[Any]) -> None:
        self.__dict__.update(values)


class LazyMetadata(Mapping[str, meta.Datum]):
    """Trigger metadata built on first access: most functions never read it."""

    def __init__(self, build: Callable[[], dict[str, meta.Datum]]) -> None:
        self._build: Callable[[], dict[str, meta.Datum]] | None = build
        self._values: dict[str, meta.Datum] = {}

    def _data(self) -> dict[str, meta.Datum]:
        if self._build is not None:
            self._values, self._build = self._build(), None
        return self._values

    def __getitem__(self, key: str) -> meta.Datum:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(value: Any) -> meta.Datum:
    return meta.Datum(json.dumps(value, default=_json_default), "json")


def _json_default(value: Any) -> Any:
    # .NET serializes byte[] property values as base64 strings, and DateTime as ISO 8601.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _properties(event: StoredEvent) -> Mapping[str, PropertyValue]:
    return event.properties


def _system_properties(event: StoredEvent) -> dict[str, Any]:
    # The host adds these four to the AMQP annotations (azure-webjobs-sdk PR 1849).
    properties = event.system_properties
    properties["SequenceNumber"] = event.sequence_number
    properties["Offset"] = event.offset
    properties["PartitionKey"] = event.partition_key
    properties["EnqueuedTimeUtc"] = event.enqueued_time
    return properties


def _common(source: PartitionSource) -> dict[str, meta.Datum]:
    return {
        "PartitionContext": _json(
            {
                "FullyQualifiedNamespace": source.namespace,
                "EventHubName": source.hub,
                "ConsumerGroup": source.consumer_group,
                "PartitionId": str(source.partition),
            }
        ),
        "sys": _json(
            {
                "MethodName": source.function_name,
                "UtcNow": _iso(datetime.now(UTC)),
                "RandGuid": str(uuid.uuid4()),
            }
        ),
    }


def _many_metadata(events: Sequence[StoredEvent], source: PartitionSource) -> dict[str, meta.Datum]:
    metadata = _common(source)
    metadata["PartitionKeyArray"] = _json([e.partition_key for e in events])
    metadata["OffsetArray"] = meta.Datum(
        _Collection(string=[str(e.offset) for e in events]), "collection_string"
    )
    metadata["SequenceNumberArray"] = meta.Datum(
        _Collection(sint64=[e.sequence_number for e in events]), "collection_sint64"
    )
    metadata["EnqueuedTimeUtcArray"] = _json([_iso(e.enqueued_time) for e in events])
    metadata["PropertiesArray"] = _json([_properties(e) for e in events])
    metadata["SystemPropertiesArray"] = _json([_system_properties(e) for e in events])
    return metadata


def _one_metadata(event: StoredEvent, source: PartitionSource) -> dict[str, meta.Datum]:
    metadata = _common(source)
    if event.partition_key is not None:
        metadata["PartitionKey"] = meta.Datum(event.partition_key, "string")
    metadata["Offset"] = meta.Datum(str(event.offset), "string")
    metadata["SequenceNumber"] = meta.Datum(event.sequence_number, "int")
    metadata["EnqueuedTimeUtc"] = meta.Datum(_iso(event.enqueued_time), "string")
    metadata["Properties"] = _json(_properties(event))
    metadata["SystemProperties"] = _json(_system_properties(event))
    return metadata


def _text_body(event: StoredEvent) -> bytes:
    # dataType "string": the host decodes the body as UTF-8 and the worker re-encodes it.
    return event.body.decode("utf-8", "replace").encode("utf-8")


def to_event_list(
    events: Sequence[StoredEvent], source: PartitionSource, *, as_string: bool = False
) -> list[func.EventHubEvent]:
    """Events for a cardinality-many trigger: all share one metadata mapping, as in the worker.

    As the worker does for many, `offset` is an int (for one it is a string).
    """
    metadata = LazyMetadata(lambda: _many_metadata(events, source))
    return [
        func.EventHubEvent(
            body=_text_body(event) if as_string else event.body,
            trigger_metadata=metadata,
            enqueued_time=event.enqueued_time,
            partition_key=event.partition_key,
            sequence_number=event.sequence_number,
            offset=event.offset,  # type: ignore[arg-type]
            iothub_metadata={},
        )
        for event in events
    ]


def to_single_event(
    event: StoredEvent, source: PartitionSource, *, as_string: bool = False
) -> func.EventHubEvent:
    """The event for a cardinality-one trigger."""
    return func.EventHubEvent(
        body=_text_body(event) if as_string else event.body,
        trigger_metadata=LazyMetadata(lambda: _one_metadata(event, source)),
        enqueued_time=event.enqueued_time,
        partition_key=event.partition_key,
        sequence_number=event.sequence_number,
        offset=str(event.offset),
        iothub_metadata={},
    )
