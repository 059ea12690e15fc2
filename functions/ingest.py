"""`ingest`: the events hub to bronze, batch by batch (eventHubTrigger, cardinality many);
`compact_bronze`: a timer that keeps the bronze tables' file counts down.

Input: up to `maxEventBatchSize` CloudEvents from one partition, in order, with their
`PartitionContext` and application properties (`protection: pseudonymized` on events that the
intake protected; the others are protected here). Valid events land in `bronze/<type>` with
PII pseudonymized, rejected ones in `bronze/deadletter` with the reason, all exactly once per
hub position; an event that cannot land for good is dead-lettered too (`processing_error`), so
the partition moves on.
Raising (the lake is unavailable) leaves the batch to be delivered again, by the retry policy.
"""

import json
import logging
from collections.abc import Mapping
from typing import Any

import azure.functions as func

from shared.bootstrap import current_platform
from shared.config import EVENTHUB_CONNECTION
from shared.events.ingest import position_from_metadata
from shared.events.protection import is_protected
from shared.events.publisher import EVENTS_HUB, INGEST_CONSUMER_GROUP

bp = func.Blueprint()
log = logging.getLogger(__name__)
COMPACTION_SCHEDULE = "0 */2 * * * *"


@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="-1",
    minimum_interval="00:00:01",
    maximum_interval="00:01:00",
)
@bp.event_hub_message_trigger(
    arg_name="events",
    event_hub_name=EVENTS_HUB,
    connection=EVENTHUB_CONNECTION,
    consumer_group=INGEST_CONSUMER_GROUP,
    cardinality="many",
)
def ingest(events: list[func.EventHubEvent]) -> None:
    if not events:
        return
    position = position_from_metadata(_partition_context(events[0]))
    protected = [is_protected(p) for p in _properties(events[0], len(events))]
    report = current_platform().events.ingestor.ingest(position, events, protected)
    log.info(json.dumps(report.to_log()))


@bp.timer_trigger(arg_name="timer", schedule=COMPACTION_SCHEDULE)
def compact_bronze(timer: func.TimerRequest) -> None:
    """Every 2 minutes: compact the bronze tables, which gain a small file per batch."""
    for table, metrics in current_platform().events.ingestor.compact_bronze().items():
        log.info(json.dumps({"event": "bronze_compaction", "table": table, **metrics}))


def _properties(event: func.EventHubEvent, count: int) -> list[Any]:
    # Each event's application properties (`PropertiesArray`, cardinality many); none known
    # when the host sends none, and the events are then taken as raw, to be protected here.
    raw = _trigger_metadata(event)
    found = raw["PropertiesArray"].python_value if "PropertiesArray" in raw else None
    if not isinstance(found, list) or len(found) != count:
        return [None] * count
    return found


def _trigger_metadata(event: func.EventHubEvent) -> Mapping[str, Any]:
    raw = getattr(event, "_EventHubEvent__trigger_metadata", None)
    return raw if isinstance(raw, Mapping) else {}


def _partition_context(event: func.EventHubEvent) -> Mapping[str, Any] | None:
    # `event.metadata` converts every metadata array of the batch (JSON-decoding one entry per
    # event) when only PartitionContext is needed: read that one entry when it can be reached.
    raw = _trigger_metadata(event)
    if "PartitionContext" in raw:
        return {"PartitionContext": raw["PartitionContext"].python_value}
    return event.metadata
