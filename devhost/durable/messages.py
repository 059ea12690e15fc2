"""Inbox messages: the history events and control requests addressed to an instance."""

from __future__ import annotations

from typing import Any

from devhost.durable.events import EventType

EVENT = "event"
TERMINATE = "terminate"
SUSPEND = "suspend"
RESUME = "resume"
CONTROL_KINDS = frozenset({TERMINATE, SUSPEND, RESUME})


def event_message(history_event: dict[str, Any], execution_id: str | None) -> dict[str, Any]:
    """A history event for an instance; `execution_id` None means any execution (raised events)."""
    return {"kind": EVENT, "execution_id": execution_id, "event": history_event}


def control_message(kind: str, reason: str | None) -> dict[str, Any]:
    return {"kind": kind, "reason": reason}


def is_control(message: dict[str, Any]) -> bool:
    return message.get("kind") in CONTROL_KINDS


def event_of(message: dict[str, Any]) -> dict[str, Any] | None:
    if message.get("kind") != EVENT:
        return None
    history_event: dict[str, Any] = message["event"]
    return history_event


def is_execution_started(message: dict[str, Any]) -> bool:
    item = event_of(message)
    return item is not None and item["EventType"] == EventType.EXECUTION_STARTED
