"""Which inbox messages one turn takes: a control alone, the start first, one retry event."""

from __future__ import annotations

from typing import Any

from devhost.durable import messages
from devhost.durable.events import EventType
from devhost.durable.instance import EngineState, InstanceState
from devhost.durable.store import InboxRow


def take_batch(state: InstanceState, ids: EngineState) -> list[InboxRow]:
    """The inbox rows the next turn of the instance processes, oldest first; [] if none."""
    inbox = state.inbox
    if not inbox:
        return []
    if state.record.status == "Suspended":
        for row in inbox:
            if row.message.get("kind") in (messages.RESUME, messages.TERMINATE):
                return [row]
        return []
    if not state.history:
        starts = [row for row in inbox if messages.is_execution_started(row.message)]
        controls = [row for row in inbox if messages.event_of(row.message) is None]
        if controls and (not starts or controls[0].id < starts[0].id):
            return [controls[0]]
        if not starts:
            return []
        rest = [row for row in inbox if row is not starts[0]]
        inbox = [starts[0], *rest]
    batch: list[InboxRow] = []
    for row in inbox:
        if messages.is_control(row.message):
            if not batch:
                batch.append(row)
            break
        if batch and is_retry_event(row.message, ids):
            break  # the SDK numbers retry timers as it meets them: one per turn, first
        batch.append(row)
    return batch


def is_retry_event(message: dict[str, Any], ids: EngineState) -> bool:
    """Whether the message fails a retried attempt or fires a retry timer."""
    item = messages.event_of(message)
    if item is None:
        return False
    kind = item["EventType"]
    if kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED):
        return item.get("TaskScheduledId") in ids.task_groups
    return kind == EventType.TIMER_FIRED and item.get("TimerId") in ids.retry_timers
