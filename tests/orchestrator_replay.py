"""Drive an orchestrator function through the SDK's replay with a history, as the host does.

`History` records a history in the SDK's event shapes, in the order the orchestrator schedules
its work; `replay` runs the orchestrator over it, and `scheduled` lists the work it asked for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.history import HistoryEventType as Event

from devhost.durable.events import format_time

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def run_orchestrator(fn: Any, history: list[dict[str, object]], input_: str | None = None) -> str:
    """Replay a plain generator function."""
    return replay(df.Orchestrator.create(fn), history, input_)


def replay(
    handle: Any,
    history: list[dict[str, object]],
    input_: str | None = None,
    parent: str | None = None,
) -> str:
    """Replay an orchestrator handle, as a blueprint's `get_user_function()` gives it, as
    instance `i1` (a sub-orchestration of `parent`, if given)."""
    context = {
        "history": history,
        "instanceId": "i1",
        "isReplaying": False,
        "parentInstanceId": parent,
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


class History:
    """A recorded history. Task ids are numbered as the SDK numbers them: one per activity
    attempt, timer and sub-orchestration, in the order the orchestrator creates them, so the
    calls must follow the orchestrator's order. Results are JSON values, as the activities (or
    sub-orchestrations) returned them: recorded literals, so a renamed payload field fails."""

    def __init__(self, name: str, input_: object = None, at: datetime = T0) -> None:
        self.input = None if input_ is None else json.dumps(input_)
        self.now = at
        self.events: list[dict[str, object]] = [
            self._event(Event.ORCHESTRATOR_STARTED),
            self._event(Event.EXECUTION_STARTED, Name=name, Input=self.input, Version=None),
        ]
        self._next_id = 0

    def _event(self, kind: Event, event_id: int = -1, **fields: Any) -> dict[str, Any]:
        return history_event(int(kind), event_id, Timestamp=format_time(self.now), **fields)

    def _add(self, kind: Event, event_id: int = -1, **fields: Any) -> None:
        self.events.append(self._event(kind, event_id, **fields))

    def turn(self, seconds: float = 0) -> History:
        """The orchestrator's turn ends; the next starts `seconds` later."""
        self._add(Event.ORCHESTRATOR_COMPLETED)
        self.now += timedelta(seconds=seconds)
        self._add(Event.ORCHESTRATOR_STARTED)
        return self

    def schedule_activity(self, name: str) -> int:
        task = self._next_id
        self._next_id += 1
        self._add(Event.TASK_SCHEDULED, task, Name=name)
        return task

    def start_sub_orchestration(self, name: str, instance_id: str) -> int:
        task = self._next_id
        self._next_id += 1
        self._add(Event.SUB_ORCHESTRATION_INSTANCE_CREATED, task, Name=name, InstanceId=instance_id)
        return task

    def create_timer(self, fire_at: datetime) -> int:
        timer = self._next_id
        self._next_id += 1
        self._add(Event.TIMER_CREATED, timer, FireAt=format_time(fire_at))
        return timer

    def completed(self, task: int, result: object) -> History:
        self._add(Event.TASK_COMPLETED, TaskScheduledId=task, Result=json.dumps(result))
        return self

    def sub_orchestration_completed(self, task: int, result: object) -> History:
        kind = Event.SUB_ORCHESTRATION_INSTANCE_COMPLETED
        self._add(kind, TaskScheduledId=task, Result=json.dumps(result))
        return self

    def timer_fired(self, timer: int, fire_at: datetime) -> History:
        self._add(Event.TIMER_FIRED, TimerId=timer, FireAt=format_time(fire_at))
        return self

    def raised(self, name: str, payload: object = None) -> History:
        self._add(Event.EVENT_RAISED, Name=name, Input=json.dumps(payload))
        return self

    def activity(self, name: str, result: object) -> History:
        """The activity the orchestrator schedules next answers `result`."""
        task = self.schedule_activity(name)
        return self.turn().completed(task, result)

    def activity_failed(self, name: str, reason: str, attempts: int = 1) -> History:
        """The next activity (with a retry policy) raises on `attempts` attempts in a row,
        each followed by its retry timer, as the host records the extension's retries."""
        for _ in range(attempts):
            task = self.schedule_activity(name)
            self.turn()._add(Event.TASK_FAILED, TaskScheduledId=task, Reason=reason, Details="")
            timer = self.create_timer(self.now)
            self.turn().timer_fired(timer, self.now)
        return self

    def timer(self, fire_at: datetime) -> History:
        """The timer the orchestrator creates next fires at `fire_at`."""
        timer = self.create_timer(fire_at)
        self._add(Event.ORCHESTRATOR_COMPLETED)
        self.now = fire_at
        self._add(Event.ORCHESTRATOR_STARTED)
        return self.timer_fired(timer, fire_at)

    def replay(self, handle: Any, parent: str | None = None) -> dict[str, Any]:
        """The orchestrator's state after this history: `isDone`, `actions`, `output`..."""
        state: dict[str, Any] = json.loads(replay(handle, self.events, self.input, parent))
        output = state.get("output")
        if isinstance(output, str):
            state["output"] = json.loads(output)
        return state


def scheduled(state: dict[str, Any]) -> list[tuple[str, Any]]:
    """The work in an orchestrator's actions, in order, compound actions flattened: activities
    and sub-orchestrations as (name, input as JSON values), timers as ("timer", fire time)."""
    work: list[tuple[str, Any]] = []

    def walk(action: dict[str, Any]) -> None:
        if action.get("functionName"):
            raw = action.get("input")
            work.append((action["functionName"], None if raw is None else json.loads(raw)))
        elif "fireAt" in action:
            work.append(("timer", action["fireAt"]))
        for child in action.get("compoundActions", []) or []:
            walk(child)

    for group in state["actions"]:
        for action in group if isinstance(group, list) else [group]:
            walk(action)
    return work


def names(state: dict[str, Any]) -> list[str]:
    """The names of the work in an orchestrator's actions (see `scheduled`)."""
    return [name for name, _ in scheduled(state)]
