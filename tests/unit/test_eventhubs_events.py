"""EventHubEvent objects as the Python worker builds them, options, and the output binding."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter

from devhost.appsettings import AppSettings
from devhost.eventhubs.events import (
    PartitionSource,
    _many_metadata,
    _one_metadata,
    to_event_list,
    to_single_event,
)
from devhost.eventhubs.options import EventHubsOptions, TriggerBinding
from devhost.eventhubs.output import OutputValueError, output_events
from devhost.hostconfig import HostConfigError
from devhost.indexing import IndexingError, index_app
from embedded.eventlog.log import NewEvent, StoredEvent

pytestmark = pytest.mark.unit

SOURCE = PartitionSource("local", "Telemetry", "$Default", 2, "ingest")
WHEN = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
STORED = [
    StoredEvent(2, 7, 340, WHEN, "device-1", {"kind": "reading", "raw": b"\x01"}, b'{"t": 21.5}'),
    StoredEvent(2, 8, 367, WHEN, None, {}, b"\xff\xfe not utf-8"),
]


class _Bytes:
    def __init__(self, values: list[bytes]) -> None:
        self.bytes = values


def _attributes(event: func.EventHubEvent) -> tuple[Any, ...]:
    return (
        event.get_body(),
        event.enqueued_time,
        event.partition_key,
        event.sequence_number,
        event.offset,
        event.iothub_metadata,
    )


def test_many_events_match_what_the_worker_decodes() -> None:
    ours = to_event_list(STORED, SOURCE)
    theirs = EventHubTriggerConverter.decode(
        meta.Datum(_Bytes([e.body for e in STORED]), "collection_bytes"),
        trigger_metadata=_many_metadata(STORED, SOURCE),
    )
    assert isinstance(theirs, list)
    assert [_attributes(e) for e in ours] == [_attributes(e) for e in theirs]
    assert ours[0].offset == 340 and ours[0].enqueued_time == WHEN


def test_a_single_event_matches_what_the_worker_decodes() -> None:
    ours = to_single_event(STORED[0], SOURCE)
    theirs = EventHubTriggerConverter.decode(
        meta.Datum(STORED[0].body, "bytes"), trigger_metadata=_one_metadata(STORED[0], SOURCE)
    )
    assert isinstance(theirs, func.EventHubEvent)
    assert _attributes(ours) == _attributes(theirs)
    assert ours.offset == "340" and ours.sequence_number == 7


def test_many_metadata_is_the_hosts_binding_data() -> None:
    metadata = to_event_list(STORED, SOURCE)[1].metadata
    assert metadata is not None
    assert metadata["PartitionContext"] == {
        "FullyQualifiedNamespace": "local",
        "EventHubName": "Telemetry",
        "ConsumerGroup": "$Default",
        "PartitionId": "2",
    }
    assert metadata["SequenceNumberArray"] == [7, 8]
    assert metadata["OffsetArray"] == ["340", "367"]
    assert metadata["PartitionKeyArray"] == ["device-1", None]
    assert metadata["EnqueuedTimeUtcArray"] == ["2024-05-01T12:30:15.123456Z"] * 2
    assert metadata["PropertiesArray"] == [
        {"kind": "reading", "raw": base64.b64encode(b"\x01").decode()},
        {},
    ]
    first = metadata["SystemPropertiesArray"][0]
    assert first["x-opt-sequence-number"] == 7 and first["SequenceNumber"] == 7
    assert first["x-opt-partition-key"] == "device-1" and first["Offset"] == 340
    assert metadata["sys"]["MethodName"] == "ingest"


def test_single_metadata_is_the_hosts_binding_data() -> None:
    metadata = to_single_event(STORED[1], SOURCE).metadata
    assert metadata is not None
    assert metadata["SequenceNumber"] == 8
    assert metadata["Offset"] == "367"
    assert "PartitionKey" not in metadata
    assert metadata["Properties"] == {}
    assert metadata["SystemProperties"]["x-opt-offset"] == "367"


def test_string_data_type_decodes_bodies_as_utf8() -> None:
    [_, event] = to_event_list(STORED, SOURCE, as_string=True)
    assert event.get_body() == "\ufffd\ufffd not utf-8".encode()


def test_host_json_options() -> None:
    assert EventHubsOptions.from_section({}) == EventHubsOptions(100, 1, "fromstart", None)
    assert EventHubsOptions.from_section({"maxEventBatchSize": 1000}).max_batch_size == 1000
    legacy = EventHubsOptions.from_section({"eventProcessorOptions": {"maxBatchSize": 64}})
    assert legacy.max_batch_size == 64
    assert EventHubsOptions.from_section({"maxBatchSize": "7"}).max_batch_size == 7
    assert EventHubsOptions.from_section({"batchCheckpointFrequency": 3}).checkpoint_frequency == 3
    timed = EventHubsOptions.from_section(
        {"initialOffsetOptions": {"type": "FromEnqueuedTime", "enqueuedTimeUtc": "2024-05-01"}}
    )
    assert timed.initial_enqueued_time == datetime(2024, 5, 1, tzinfo=UTC)
    filled = EventHubsOptions.from_section({"minEventBatchSize": 50, "maxWaitTime": "00:00:02.5"})
    assert (filled.min_batch_size, filled.max_wait_s) == (50, 2.5)
    assert EventHubsOptions.from_section({"maxWaitTime": "1.00:00:00"}).max_wait_s == 86_400


@pytest.mark.parametrize(
    "section",
    [
        {"maxEventBatchSize": 0},
        {"maxEventBatchSize": "lots"},
        {"maxEventBatchSize": True},
        {"batchCheckpointFrequency": -1},
        {"initialOffsetOptions": {"type": "fromMiddle"}},
        {"initialOffsetOptions": {"type": "fromEnqueuedTime", "enqueuedTimeUtc": "yesterday"}},
        {"eventProcessorOptions": []},
        {"minEventBatchSize": 200},
        {"maxWaitTime": "soon"},
    ],
)
def test_bad_host_json_options_are_named(section: dict[str, Any]) -> None:
    with pytest.raises(HostConfigError, match="extensions.eventHubs"):
        EventHubsOptions.from_section(section)


def _index(**trigger: Any) -> Any:
    app = func.FunctionApp()

    @app.function_name("consume")
    @app.event_hub_message_trigger(arg_name="events", connection="Conn", **trigger)
    def consume(events: list[func.EventHubEvent]) -> None:
        return None

    return index_app(app, AppSettings({}, environ={"HUB": "orders"}))[0]


def test_trigger_bindings_are_read_with_defaults() -> None:
    binding = TriggerBinding.from_function(_index(event_hub_name="%HUB%"))
    assert binding == TriggerBinding("orders", "Conn", "$Default", True, False)
    single = TriggerBinding.from_function(
        _index(
            event_hub_name="x",
            cardinality=func.Cardinality.ONE,
            consumer_group="audit",
            data_type=func.DataType.STRING,
        )
    )
    assert (single.many, single.consumer_group, single.as_string) == (False, "audit", True)


def test_a_bad_cardinality_names_the_function() -> None:
    function = _index(event_hub_name="x")
    config = {**function.trigger.config, "cardinality": "several"}
    broken = type(function.trigger)(function.trigger.name, function.trigger.type, "in", config)
    with pytest.raises(IndexingError, match="'consume'.*cardinality"):
        TriggerBinding.from_function(type(function)(**{**vars(function), "trigger": broken}))


def test_output_values_become_events() -> None:
    assert output_events("hi", "out") == [NewEvent(b"hi")]
    assert output_events(b"\x00", "out") == [NewEvent(b"\x00")]
    assert output_events(["a", b"b", {"c": 1}], "out") == [
        NewEvent(b"a"),
        NewEvent(b"b"),
        NewEvent(json.dumps({"c": 1}).encode()),
    ]
    assert output_events(None, "out") == []
    with pytest.raises(OutputValueError, match="'out'"):
        output_events(object(), "out")
