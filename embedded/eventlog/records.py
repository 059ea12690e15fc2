"""What the local event log stores and returns: events, positions, checkpoints, and errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

PropertyValue = str | int | float | bool | bytes | None

# Event Hubs Standard refuses events over 1 MB; the log refuses them too, with a clear error.
MAX_EVENT_BYTES = 1024 * 1024
# Offsets count bytes as Event Hubs does; each record adds a nominal header so that
# offsets strictly increase even for empty bodies.
RECORD_HEADER_BYTES = 16
_BYTES_TAG = "$b64"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EventLogError(Exception):
    """The event log cannot do what was asked."""


class InvalidEvent(EventLogError, ValueError):
    """An event of a batch cannot be stored; `index` is its place in the batch."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"event {index}: {problem}")
        self.index = index


class EventTooLarge(InvalidEvent):
    """An event's body is over the 1 MB Event Hubs limit."""


class InvalidName(EventLogError, ValueError):
    """A hub or consumer group name that Event Hubs would refuse."""


class InvalidPartition(EventLogError, ValueError):
    """A partition id outside the hub's partitions."""


class UnknownHub(EventLogError, LookupError):
    """The hub does not exist in this log yet."""


class EventLogBusy(EventLogError):
    """Another writer held the log for longer than the busy timeout."""


class NewEvent(NamedTuple):
    """An event to append: its body, optional partition key and application properties."""

    body: bytes
    partition_key: str | None = None
    properties: Mapping[str, PropertyValue] | None = None


class Position(NamedTuple):
    """Where an appended event landed."""

    partition: int
    sequence_number: int
    offset: int
    enqueued_time: datetime


class StoredEvent(NamedTuple):
    """An event read back from the log."""

    partition: int
    sequence_number: int
    offset: int
    enqueued_time: datetime
    partition_key: str | None
    properties: Mapping[str, PropertyValue]
    body: bytes

    @property
    def system_properties(self) -> dict[str, Any]:
        """The AMQP annotations Event Hubs sets on every event it stores."""
        annotations: dict[str, Any] = {
            "x-opt-sequence-number": self.sequence_number,
            "x-opt-offset": str(self.offset),
            "x-opt-enqueued-time": self.enqueued_time,
        }
        if self.partition_key is not None:
            annotations["x-opt-partition-key"] = self.partition_key
        return annotations


class PartitionInfo(NamedTuple):
    """A partition's bounds, as `EventHubConsumerClient.get_partition_properties` reports them."""

    hub: str
    partition: int
    beginning_sequence_number: int
    last_enqueued_sequence_number: int
    last_enqueued_offset: int
    last_enqueued_time: datetime | None
    is_empty: bool


class Checkpoint(NamedTuple):
    """The last event a consumer group finished with in one partition."""

    sequence_number: int
    offset: int
    updated_at: datetime


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def encode_properties(index: int, properties: Mapping[str, PropertyValue] | None) -> str | None:
    """Application properties as JSON text, bytes values tagged; None when there are none."""
    if not properties:
        return None
    if not isinstance(properties, Mapping):
        raise InvalidEvent(index, f"properties must be a mapping, not {type(properties).__name__}")
    document: dict[str, Any] = {}
    for key, value in properties.items():
        if not isinstance(key, str):
            raise InvalidEvent(index, f"property names must be strings, not {key!r}")
        if value is None or isinstance(value, str | int | float):
            document[key] = value
        elif isinstance(value, bytes | bytearray | memoryview):
            document[key] = {_BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
        else:
            raise InvalidEvent(
                index,
                f"property {key!r}: {type(value).__name__} is not a supported value "
                "(str, int, float, bool, bytes or None)",
            )
    # ensure_ascii keeps lone surrogates (legal in a Python str) representable as JSON escapes.
    return json.dumps(document, separators=(",", ":"))


def decode_properties(text: str | None) -> dict[str, PropertyValue]:
    if text is None:
        return {}
    document: dict[str, Any] = json.loads(text)
    for key, value in document.items():
        if isinstance(value, dict):
            document[key] = base64.b64decode(value[_BYTES_TAG])
    return document
