"""History events in the shape the Durable SDK reads, and the payload encoding they carry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class EventType(IntEnum):
    """The numbers of `azure.durable_functions.models.history.HistoryEventType`."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_INSTANCE_CREATED = 7
    SUB_ORCHESTRATION_INSTANCE_COMPLETED = 8
    SUB_ORCHESTRATION_INSTANCE_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC_EVENT = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


# The SDK's replay reads only these; the others are kept for the status API and operators.
REPLAYED_TYPES = frozenset(
    {
        EventType.EXECUTION_STARTED,
        EventType.TASK_COMPLETED,
        EventType.TASK_FAILED,
        EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
        EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
        EventType.TIMER_FIRED,
        EventType.ORCHESTRATOR_STARTED,
        EventType.EVENT_RAISED,
        EventType.EVENT_SENT,
        EventType.CONTINUE_AS_NEW,
    }
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """The ISO 8601 UTC form used in history and in the HTTP API."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without a zone is taken as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def event(
    kind: EventType, timestamp: datetime, event_id: int = -1, **fields: Any
) -> dict[str, Any]:
    """A history event: `EventType`, `EventId`, `IsPlayed`, `Timestamp`, then its own fields."""
    return {
        "EventType": int(kind),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_time(timestamp),
        **fields,
    }


def payload_text(body: bytes | str | None) -> str | None:
    """The JSON text the SDK decodes (`df_loads`) into the value a client sent.

    The SDK's client JSON-encodes its payloads before posting them as JSON, so the body is a
    JSON string holding JSON text; curl sends the JSON value itself. Both map to the same text.
    Raises ValueError if the body is not JSON, or nests deeper than the parser's recursion limit.
    """
    if body is None:
        return None
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if not text.strip():
        return None
    try:
        value = json.loads(text)
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError:
                return json.dumps(value)
            return value
        return json.dumps(value)
    except RecursionError as error:
        raise ValueError("the JSON is nested too deeply") from error


def decode_payload(text: str | None) -> Any:
    """The JSON value behind a payload text, for status responses; raw text if not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
