"""Drive an orchestrator function through the SDK's replay with a history, as the host does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df

from devhost.durable.events import format_time


def run_orchestrator(fn: Any, history: list[dict[str, object]], input_: str | None = None) -> str:
    """Replay a plain generator function."""
    return replay(df.Orchestrator.create(fn), history, input_)


def replay(handle: Any, history: list[dict[str, object]], input_: str | None = None) -> str:
    """Replay an orchestrator handle, as a blueprint's `get_user_function()` gives it."""
    context = {
        "history": history,
        "instanceId": "i1",
        "isReplaying": False,
        "parentInstanceId": None,
        "input": input_,
        "upperSchemaVersion": 2,
    }
    result: str = handle(json.dumps(context))
    return result


def history_event(kind: int, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    now = format_time(datetime.now(UTC))
    return {"EventType": kind, "EventId": event_id, "IsPlayed": False, "Timestamp": now, **fields}


def first_turn(name: str = "o", input_: str | None = None) -> list[dict[str, object]]:
    return [
        history_event(12),
        history_event(0, Name=name, Input=input_, Version=None),
    ]
