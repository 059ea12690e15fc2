"""One orchestrator turn: take new events, replay through the SDK, carry out the new actions."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from devhost.durable import messages
from devhost.durable.actions import (
    Action,
    ActionType,
    OrchestratorProtocolError,
    TurnResult,
    parse_failure,
    parse_state,
)
from devhost.durable.activities import HTTP_ACTIVITY
from devhost.durable.commit import Commit
from devhost.durable.determinism import divergence
from devhost.durable.events import EventType, event, format_time, parse_time, utc_now
from devhost.durable.inbox_batch import take_batch
from devhost.durable.instance import EngineState, InstanceState, ParentRef, execution_started
from devhost.durable.retry import RetryOptionsError
from devhost.durable.retry_groups import (
    RETRY_TIMEOUT_REASON,
    RetryAttempt,
    RetryTimer,
    next_retry_step,
    open_group,
)
from devhost.durable.store import ActivityRow, InboxRow
from devhost.invocation import FunctionFailed, HostShuttingDown

if TYPE_CHECKING:
    from devhost.durable.engine import Engine


class Turn:
    """Runs one turn of one instance; the engine guarantees no two turns of it overlap."""

    def __init__(self, engine: Engine, state: InstanceState) -> None:
        self.engine = engine
        self.state = state
        self.now = utc_now()
        self.commit = Commit()
        self.ids = state.engine.copy()
        self.record = dataclasses.replace(state.record)
        self.events: list[dict[str, Any]] = []
        self.consumed: list[InboxRow] = []
        self.reset_history = False

    # entry point

    async def run(self) -> Commit | None:
        """Process the instance's inbox; None when there was nothing to do or the host stops."""
        batch = take_batch(self.state, self.ids)
        if not batch:
            return None
        if messages.is_control(batch[0].message):
            self._control(batch[0])
        else:
            self.consumed.extend(batch)
            live = [row for row in batch if self._is_live(row.message)]
            if live:
                new_events = [messages.event_of(row.message) or {} for row in live]
                if not await self._replay(new_events):
                    return None
        self._persist_consumed()
        return self.commit

    def _is_live(self, message: dict[str, Any]) -> bool:
        execution = message.get("execution_id")
        return execution is None or execution == self.record.execution_id

    # control requests

    def _control(self, row: InboxRow) -> None:
        kind = row.message["kind"]
        reason = row.message.get("reason")
        self.consumed.append(row)
        if kind == messages.TERMINATE:
            self.events.append(event(EventType.EXECUTION_TERMINATED, self.now, Input=reason))
            self._finish("Terminated", json.dumps(reason), failure=f"terminated: {reason}")
        elif kind == messages.SUSPEND:
            self.events.append(event(EventType.EXECUTION_SUSPENDED, self.now, Reason=reason))
            self.record.status = "Suspended"
        elif kind == messages.RESUME:
            self.events.append(event(EventType.EXECUTION_RESUMED, self.now, Reason=reason))
            self.record.status = "Running"

    # replay

    async def _replay(self, new_events: list[dict[str, Any]]) -> bool:
        events = [event(EventType.ORCHESTRATOR_STARTED, self.now), *new_events]
        self.events.extend(events)
        first = new_events[0]
        self._pre_allocate(first)
        spec = self.engine.orchestrators.get(self.record.name)
        if spec is None:
            result = TurnResult(
                False, [], error=f"no orchestrator function named {self.record.name!r}"
            )
        else:
            context = self.state.replay_context(events)
            try:
                invocation = await self.engine.invoke(spec, context, self.record.instance_id)
                result = parse_state(invocation.result)
            except FunctionFailed as failure:
                result = parse_failure(failure.error)
            except OrchestratorProtocolError as error:
                result = TurnResult(False, [], error=str(error))
            except HostShuttingDown:
                return False
        if self.record.status == "Pending":
            self.record.status = "Running"
        self._apply(result)
        return True

    def _pre_allocate(self, first: dict[str, Any]) -> None:
        """Carry out the retry timer or the next attempt the SDK creates for this event."""
        step = next_retry_step(self.ids, first)
        if isinstance(step, RetryTimer):
            fire_at = self.now + timedelta(milliseconds=step.delay_ms)
            self._create_timer(step.timer_id, fire_at, retry=True)
        elif isinstance(step, RetryAttempt):
            group = step.group
            if group.timed_out:
                self._fail_now(step.task_id, group.kind, RETRY_TIMEOUT_REASON)
            elif group.kind == "activity":
                self._schedule_activity(step.task_id, group.name, group.input)
            else:
                self._start_child(
                    step.task_id, group.name, group.input, group.instance_id, group.version
                )

    # actions

    def _apply(self, result: TurnResult) -> None:
        error, details = result.error, result.details
        known = self.ids.signatures
        actions = result.actions
        mismatch = divergence(actions, known)
        if mismatch is not None:
            error, details = mismatch, None
        continue_input: str | None = None
        continued = False
        if error is None:
            for action in actions[len(known) :]:
                try:
                    outcome = self._schedule(action)
                except (RetryOptionsError, ValueError, KeyError) as problem:
                    error = f"invalid {action.describe()} action: {problem}"
                    break
                if outcome is not None:
                    continued, continue_input = True, outcome
            self._cancel_timers(actions)
        if result.custom_status is not None:
            self.record.custom_status = json.dumps(result.custom_status)
        if error is not None:
            message = f"Orchestrator function '{self.record.name}' failed: {error}"
            self._finish("Failed", json.dumps(message), failure=error, details=details)
        elif continued:
            self._continue_as_new(continue_input)
        elif result.is_done:
            self._finish("Completed", json.dumps(result.output))
        else:
            self.events.append(event(EventType.ORCHESTRATOR_COMPLETED, self.now))

    def _schedule(self, action: Action) -> str | None:
        """Carry out one new action; returns the new input if it is continue-as-new."""
        raw = action.raw
        task_id = self.ids.allocate() if action.takes_task_id else None
        self.ids.signatures.append(action.signature)
        self.ids.action_ids.append(task_id)
        kind = action.type
        if task_id is None:
            return None
        if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
            name = str(raw["functionName"])
            if kind is ActionType.CALL_ACTIVITY_WITH_RETRY:
                open_group(self.ids, task_id, "activity", name, raw)
            self._schedule_activity(task_id, name, raw.get("input"))
        elif kind in (
            ActionType.CALL_SUB_ORCHESTRATOR,
            ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY,
        ):
            name = str(raw["functionName"])
            if kind is ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY:
                open_group(self.ids, task_id, "sub", name, raw)
            self._start_child(
                task_id, name, raw.get("input"), raw.get("instanceId"), raw.get("version")
            )
        elif kind is ActionType.CREATE_TIMER:
            if not action.is_cancelled:
                self._create_timer(task_id, parse_time(str(raw["fireAt"])))
        elif kind is ActionType.CONTINUE_AS_NEW:
            value = raw.get("input")
            return value if isinstance(value, str) else json.dumps(value)
        elif kind is ActionType.CALL_HTTP:
            self._schedule_activity(task_id, HTTP_ACTIVITY, json.dumps(raw.get("httpRequest")))
        else:
            raise ValueError("durable entities are not supported by the devhost")
        return None

    def _cancel_timers(self, actions: list[Action]) -> None:
        for index, action in enumerate(actions):
            if action.type is not ActionType.CREATE_TIMER or not action.is_cancelled:
                continue
            task_id = self.ids.action_ids[index] if index < len(self.ids.action_ids) else None
            inbox_id = self.ids.timers.pop(task_id, None) if task_id is not None else None
            if inbox_id is not None:
                self.commit.cancel_timer(inbox_id)

    # work

    def _schedule_activity(self, task_id: int, name: str, payload: str | None) -> None:
        self.events.append(
            event(EventType.TASK_SCHEDULED, self.now, task_id, Name=name, Input=payload)
        )
        row = ActivityRow(
            self.engine.new_activity_id(),
            self.record.instance_id,
            self.record.execution_id,
            task_id,
            name,
            payload,
        )
        self.commit.add_activity(row)

    def _create_timer(self, task_id: int, fire_at: datetime, retry: bool = False) -> None:
        fire_text = format_time(fire_at)
        self.events.append(event(EventType.TIMER_CREATED, self.now, task_id, FireAt=fire_text))
        fired = event(EventType.TIMER_FIRED, fire_at, TimerId=task_id, FireAt=fire_text)
        row = self.send(
            self.record.instance_id,
            messages.event_message(fired, self.record.execution_id),
            fire_at.timestamp(),
        )
        if not retry:
            self.ids.timers[task_id] = row.id

    def _fail_now(self, task_id: int, kind: str, reason: str) -> None:
        failed_type = (
            EventType.TASK_FAILED
            if kind == "activity"
            else EventType.SUB_ORCHESTRATION_INSTANCE_FAILED
        )
        failed = event(failed_type, self.now, TaskScheduledId=task_id, Reason=reason, Details=None)
        self.send(self.record.instance_id, messages.event_message(failed, self.record.execution_id))

    def _start_child(
        self,
        task_id: int,
        name: str,
        payload: str | None,
        instance_id: str | None,
        version: str | None,
    ) -> None:
        child_id = instance_id or f"{self.record.instance_id}:{task_id}"
        self.events.append(
            event(
                EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
                self.now,
                task_id,
                Name=name,
                InstanceId=child_id,
                Input=payload,
            )
        )
        parent = ParentRef(self.record.instance_id, self.record.execution_id, task_id)
        problem = self.engine.cannot_start(name, child_id)
        if problem is not None:
            self._fail_now(task_id, "sub", problem)
            return
        state = self.engine.new_instance(name, child_id, payload, version, parent, self.commit)
        self.commit.new_instances.append(state)

    def send(
        self, instance_id: str, message: dict[str, Any], visible_at: float | None = None
    ) -> InboxRow:
        """Queue a message to any instance as part of this turn's commit."""
        row = InboxRow(self.engine.new_inbox_id(), instance_id, visible_at or 0.0, message)
        self.commit.add_message(row)
        return row

    # endings

    def _finish(
        self, status: str, output: str, failure: str | None = None, details: str | None = None
    ) -> None:
        self.record.status = status
        self.record.output = output
        completed: dict[str, Any] = {"OrchestrationStatus": status, "Result": output}
        if status == "Failed":
            completed["FailureDetails"] = {"ErrorMessage": failure, "StackTrace": details}
        if status != "Terminated":
            self.events.append(event(EventType.ORCHESTRATOR_COMPLETED, self.now))
            self.events.append(event(EventType.EXECUTION_COMPLETED, self.now, **completed))
        instance_id = self.record.instance_id
        self.commit.statements.append(("DELETE FROM inbox WHERE instance_id = ?", (instance_id,)))
        self.commit.statements.append(
            ("DELETE FROM activities WHERE instance_id = ?", (instance_id,))
        )
        self.commit.cancelled_timers.extend(self.ids.timers.values())
        self.ids.timers.clear()
        self.commit.finished = True
        parent = self.state.parent
        if parent is None:
            return
        if status == "Completed":
            done = event(
                EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
                self.now,
                TaskScheduledId=parent.task_id,
                Result=output,
            )
        else:
            done = event(
                EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                self.now,
                TaskScheduledId=parent.task_id,
                Reason=f"Sub-orchestration '{self.record.name}' ({instance_id}) {failure}"
                if status == "Terminated"
                else f"Sub-orchestration '{self.record.name}' ({instance_id}) failed: {failure}",
                Details=details,
            )
        self.send(parent.instance_id, messages.event_message(done, parent.execution_id))

    def _continue_as_new(self, payload: str | None) -> None:
        for inbox_id in self.ids.timers.values():
            self.commit.cancel_timer(inbox_id)
        self.record.execution_id = uuid.uuid4().hex
        self.record.input = payload
        self.ids = EngineState()
        self.reset_history = True
        self.events = []
        self.commit.statements.append(
            ("DELETE FROM history WHERE instance_id = ?", (self.record.instance_id,))
        )
        started = execution_started(self.record, None, self.now)
        self.send(
            self.record.instance_id, messages.event_message(started, self.record.execution_id)
        )

    def _persist_consumed(self) -> None:
        """Add the statements that record the turn: consumed inbox, history chunk, the row."""
        ids = [row.id for row in self.consumed]
        if ids:
            marks = ", ".join("?" for _ in ids)
            self.commit.statements.insert(0, (f"DELETE FROM inbox WHERE id IN ({marks})", ids))
        chunk = 0 if self.reset_history else self.state.history_chunks
        if self.events:
            self.commit.statements.append(
                (
                    "INSERT OR REPLACE INTO history (instance_id, chunk, events) VALUES (?, ?, ?)",
                    (self.record.instance_id, chunk, json.dumps(self.events)),
                )
            )
        self.record.last_updated_time = format_time(self.now)
        self.record.engine_state = self.ids.to_json()
        self.commit.statements.append(self.record.upsert())
