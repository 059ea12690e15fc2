"""Stored events to `func.EventHubEvent`, with the trigger metadata the Python worker supplies.

The Functions host sends Event Hubs binding data (`PartitionContext`, `SequenceNumberArray`,
`SystemPropertiesArray`, ... for cardinality many; `SequenceNumber`, `SystemProperties`,
... for one) and the worker turns it into `EventHubEvent` objects. The devhost builds the
same objects directly, because the worker's converter parses each enqueued time with
`strptime` (about 70 µs an event). The metadata is a mapping of `meta.Datum` exactly like
the worker's, each entry built lazily on its first read.
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

from embedded.eventlog.records import PropertyValue, StoredEvent


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


Field = Callable[[Any, PartitionSource], meta.Datum]


class LazyMetadata(Mapping[str, meta.Datum]):
    """Trigger metadata whose entries are each built on first access, one key at a time.

    Most functions read none of it, and ingestion reads only `PartitionContext`: building
    every per-event array for that cost a quarter of a batch's time. `fields` maps each key
    to a function of (`subject`, `source`), where `subject` is the batch or the event.
    """

    __slots__ = ("_fields", "_subject", "_source", "_values")

    def __init__(self, fields: Mapping[str, Field], subject: Any, source: PartitionSource) -> None:
        self._fields = fields
        self._subject = subject
        self._source = source
        self._values: dict[str, meta.Datum] = {}

    def __getitem__(self, key: str) -> meta.Datum:
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = self._fields[key](self._subject, self._source)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


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


def _partition_context(_: Any, source: PartitionSource) -> meta.Datum:
    return _json(
        {
            "FullyQualifiedNamespace": source.namespace,
            "EventHubName": source.hub,
            "ConsumerGroup": source.consumer_group,
            "PartitionId": str(source.partition),
        }
    )


def _sys(_: Any, source: PartitionSource) -> meta.Datum:
    return _json(
        {
            "MethodName": source.function_name,
            "UtcNow": _iso(datetime.now(UTC)),
            "RandGuid": str(uuid.uuid4()),
        }
    )


def _collection(kind: str, **values: list[Any]) -> meta.Datum:
    return meta.Datum(_Collection(**values), kind)


# Keys in the order the host sends them; each entry is built only when it is read.
_MANY_FIELDS: dict[str, Field] = {
    "PartitionContext": _partition_context,
    "sys": _sys,
    "PartitionKeyArray": lambda events, _: _json([e.partition_key for e in events]),
    "OffsetArray": lambda events, _: _collection(
        "collection_string", string=[str(e.offset) for e in events]
    ),
    "SequenceNumberArray": lambda events, _: _collection(
        "collection_sint64", sint64=[e.sequence_number for e in events]
    ),
    "EnqueuedTimeUtcArray": lambda events, _: _json([_iso(e.enqueued_time) for e in events]),
    "PropertiesArray": lambda events, _: _json([_properties(e) for e in events]),
    "SystemPropertiesArray": lambda events, _: _json([_system_properties(e) for e in events]),
}
_ONE_FIELDS_UNKEYED: dict[str, Field] = {
    "PartitionContext": _partition_context,
    "sys": _sys,
    "Offset": lambda event, _: meta.Datum(str(event.offset), "string"),
    "SequenceNumber": lambda event, _: meta.Datum(event.sequence_number, "int"),
    "EnqueuedTimeUtc": lambda event, _: meta.Datum(_iso(event.enqueued_time), "string"),
    "Properties": lambda event, _: _json(_properties(event)),
    "SystemProperties": lambda event, _: _json(_system_properties(event)),
}
# An event without a partition key has no PartitionKey entry at all.
_ONE_FIELDS_KEYED: dict[str, Field] = {
    "PartitionContext": _partition_context,
    "sys": _sys,
    "PartitionKey": lambda event, _: meta.Datum(event.partition_key, "string"),
    **_ONE_FIELDS_UNKEYED,
}


def _one_fields(event: StoredEvent) -> dict[str, Field]:
    return _ONE_FIELDS_UNKEYED if event.partition_key is None else _ONE_FIELDS_KEYED


def _many_metadata(events: Sequence[StoredEvent], source: PartitionSource) -> dict[str, meta.Datum]:
    """Every metadata entry of a batch, built at once (what `LazyMetadata` defers)."""
    return dict(LazyMetadata(_MANY_FIELDS, events, source).items())


def _one_metadata(event: StoredEvent, source: PartitionSource) -> dict[str, meta.Datum]:
    """Every metadata entry of one event, built at once."""
    return dict(LazyMetadata(_one_fields(event), event, source).items())


def _text_body(event: StoredEvent) -> bytes:
    # dataType "string": the host decodes the body as UTF-8 and the worker re-encodes it.
    return event.body.decode("utf-8", "replace").encode("utf-8")


def to_event_list(
    events: Sequence[StoredEvent], source: PartitionSource, *, as_string: bool = False
) -> list[func.EventHubEvent]:
    """Events for a cardinality-many trigger: all share one metadata mapping, as in the worker.

    As the worker does for many, `offset` is an int (for one it is a string).
    """
    metadata = LazyMetadata(_MANY_FIELDS, events, source)
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
        trigger_metadata=LazyMetadata(_one_fields(event), event, source),
        enqueued_time=event.enqueued_time,
        partition_key=event.partition_key,
        sequence_number=event.sequence_number,
        offset=str(event.offset),
        iothub_metadata={},
    )
