"""The Event Hubs trigger's configuration: its binding and `host.json` `extensions.eventHubs`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devhost.hostconfig import HostConfigError
from devhost.indexing import FunctionSpec, IndexingError

DEFAULT_MAX_BATCH = 100
DEFAULT_CONSUMER_GROUP = "$Default"
DEFAULT_MAX_WAIT_S = 60.0
INITIAL_OFFSETS = ("fromstart", "fromend", "fromenqueuedtime")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True)
class EventHubsOptions:
    """The parts of `extensions.eventHubs` the devhost honours.

    `maxEventBatchSize` (extension v5; default 100), or the legacy
    `eventProcessorOptions.maxBatchSize` / `maxBatchSize`; `minEventBatchSize` with
    `maxWaitTime` (wait up to that long to fill a batch to the minimum; default 1 and 60 s);
    `batchCheckpointFrequency` (checkpoint every N batches, default 1); `initialOffsetOptions`
    (`type` fromStart, fromEnd or fromEnqueuedTime with `enqueuedTimeUtc`) for partitions
    with no checkpoint.
    """

    max_batch_size: int = DEFAULT_MAX_BATCH
    checkpoint_frequency: int = 1
    initial_offset: str = "fromstart"
    initial_enqueued_time: datetime | None = None
    min_batch_size: int = 1
    max_wait_s: float = DEFAULT_MAX_WAIT_S

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> EventHubsOptions:
        processor = section.get("eventProcessorOptions", {})
        if not isinstance(processor, Mapping):
            raise HostConfigError(
                "host.json: extensions.eventHubs.eventProcessorOptions must be an object"
            )
        batch = _positive_int(
            section.get(
                "maxEventBatchSize", processor.get("maxBatchSize", section.get("maxBatchSize"))
            ),
            "maxEventBatchSize",
            DEFAULT_MAX_BATCH,
        )
        frequency = _positive_int(
            section.get("batchCheckpointFrequency"), "batchCheckpointFrequency", 1
        )
        initial = section.get("initialOffsetOptions", {})
        if not isinstance(initial, Mapping):
            raise HostConfigError(
                "host.json: extensions.eventHubs.initialOffsetOptions must be an object"
            )
        offset = str(initial.get("type", "fromStart")).lower()
        if offset not in INITIAL_OFFSETS:
            raise HostConfigError(
                "host.json: extensions.eventHubs.initialOffsetOptions.type must be "
                f"fromStart, fromEnd or fromEnqueuedTime, not {initial.get('type')!r}"
            )
        enqueued = None
        if offset == "fromenqueuedtime":
            enqueued = _utc_time(initial.get("enqueuedTimeUtc"))
        minimum = _positive_int(section.get("minEventBatchSize"), "minEventBatchSize", 1)
        if minimum > batch:
            raise HostConfigError(
                "host.json: extensions.eventHubs.minEventBatchSize must not exceed "
                f"maxEventBatchSize ({minimum} > {batch})"
            )
        wait = _timespan_s(section.get("maxWaitTime"), "maxWaitTime", DEFAULT_MAX_WAIT_S)
        return cls(batch, frequency, offset, enqueued, minimum, wait)


def _positive_int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise HostConfigError(f"host.json: extensions.eventHubs.{name} must be a positive integer")
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise HostConfigError(
            f"host.json: extensions.eventHubs.{name} must be a positive integer, not {value!r}"
        )
    return number


def _timespan_s(value: Any, name: str, default: float) -> float:
    """A .NET TimeSpan setting (`[d.]hh:mm:ss[.fff]`) in seconds."""
    if value is None:
        return default
    match = _TIMESPAN.match(str(value).strip())
    if match is None:
        raise HostConfigError(
            f"host.json: extensions.eventHubs.{name} must be a time span like 00:00:05, "
            f"not {value!r}"
        )
    days, hours, minutes, seconds = match.groups()
    return ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + float(seconds)


def _utc_time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise HostConfigError(
            "host.json: extensions.eventHubs.initialOffsetOptions.enqueuedTimeUtc must be an "
            f"ISO 8601 time, not {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TriggerBinding:
    """An eventHubTrigger binding, with `%Setting%` references already resolved."""

    hub: str
    connection: str | None
    consumer_group: str
    many: bool
    as_string: bool

    @classmethod
    def from_function(cls, function: FunctionSpec) -> TriggerBinding:
        trigger = function.trigger
        where = f"function {function.name!r}, binding {trigger.name!r} (eventHubTrigger)"
        hub = trigger.get("eventHubName") or trigger.get("path")
        if not isinstance(hub, str) or not hub:
            raise IndexingError(f"{where}: eventHubName is required")
        cardinality = str(trigger.get("cardinality") or "many").lower()
        if cardinality not in ("many", "one"):
            raise IndexingError(
                f"{where}: cardinality must be 'many' or 'one', not {cardinality!r}"
            )
        consumer_group = trigger.get("consumerGroup") or DEFAULT_CONSUMER_GROUP
        connection = trigger.get("connection")
        return cls(
            hub=hub,
            connection=str(connection) if connection else None,
            consumer_group=str(consumer_group),
            many=cardinality == "many",
            as_string=str(trigger.get("dataType") or "").lower() == "string",
        )
