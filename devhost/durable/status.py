"""The status payloads of the Durable HTTP API: instances and their history, as Azure shows them."""

from __future__ import annotations

from typing import Any

from devhost.durable.events import EventType, decode_payload
from devhost.durable.store import InstanceRecord

# Azure folds scheduling events into their completions and hides the turn markers.
HIDDEN_EVENTS = frozenset(
    {
        EventType.ORCHESTRATOR_STARTED,
        EventType.ORCHESTRATOR_COMPLETED,
        EventType.TASK_SCHEDULED,
        EventType.TIMER_CREATED,
        EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
    }
)
SCHEDULERS = frozenset({EventType.TASK_SCHEDULED, EventType.SUB_ORCHESTRATION_INSTANCE_CREATED})


def status_payload(
    record: InstanceRecord,
    *,
    show_input: bool = True,
    history: list[dict[str, Any]] | None = None,
    show_history_output: bool = False,
) -> dict[str, Any]:
    """The documented status object: name, instanceId, runtimeStatus, input, output, times."""
    payload: dict[str, Any] = {
        "name": record.name,
        "instanceId": record.instance_id,
        "runtimeStatus": record.status,
        "input": decode_payload(record.input) if show_input else None,
        "customStatus": decode_payload(record.custom_status),
        "output": decode_payload(record.output),
        "createdTime": record.created_time,
        "lastUpdatedTime": record.last_updated_time,
    }
    if history is not None:
        payload["historyEvents"] = history_payload(history, show_history_output)
    return payload


def history_payload(history: list[dict[str, Any]], show_output: bool) -> list[dict[str, Any]]:
    """History events with names resolved and payloads shown only when asked for."""
    scheduled: dict[int, dict[str, Any]] = {}
    shown: list[dict[str, Any]] = []
    for item in history:
        kind = EventType(item["EventType"])
        if kind in SCHEDULERS:
            scheduled[item["EventId"]] = item
        if kind in HIDDEN_EVENTS:
            continue
        entry: dict[str, Any] = {"EventType": _event_name(kind), "Timestamp": item["Timestamp"]}
        source = scheduled.get(item.get("TaskScheduledId", -2))
        if kind == EventType.EXECUTION_STARTED:
            entry["FunctionName"] = item.get("Name")
            if item.get("ParentInstance"):
                entry["ParentInstance"] = item["ParentInstance"]
            if show_output:
                entry["Input"] = decode_payload(item.get("Input"))
        elif source is not None:
            entry["FunctionName"] = source.get("Name")
            entry["ScheduledTime"] = source.get("Timestamp")
            if source.get("InstanceId"):
                entry["InstanceId"] = source["InstanceId"]
        if "Reason" in item:
            entry["Reason"] = item["Reason"]
        if item.get("Details"):
            entry["Details"] = item["Details"]
        if kind == EventType.TIMER_FIRED:
            entry["FireAt"] = item.get("FireAt")
        if kind == EventType.EVENT_RAISED:
            entry["Name"] = item.get("Name")
            if show_output:
                entry["Input"] = decode_payload(item.get("Input"))
        if kind == EventType.EXECUTION_TERMINATED:
            entry["Reason"] = item.get("Input")
        if kind == EventType.EXECUTION_COMPLETED:
            entry["OrchestrationStatus"] = item.get("OrchestrationStatus")
            if item.get("FailureDetails"):
                entry["FailureDetails"] = item["FailureDetails"]
        if show_output and "Result" in item:
            entry["Result"] = decode_payload(item.get("Result"))
        shown.append(entry)
    return shown


def _event_name(kind: EventType) -> str:
    return "".join(part.title() for part in kind.name.split("_"))
