"""The durable engine: a task hub's live instances, the requests on them, and their turns."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devhost.durable import messages
from devhost.durable.activity_workers import ActivityWorkers
from devhost.durable.commit import Commit
from devhost.durable.events import EventType, event, format_time, utc_now
from devhost.durable.ids import new_id
from devhost.durable.instance import EngineState, InstanceState, ParentRef, execution_started
from devhost.durable.recovery import recover
from devhost.durable.scheduler import TurnScheduler
from devhost.durable.store import InboxRow, InstanceRecord, Store, get_instance
from devhost.durable.timers import TimerQueue
from devhost.durable.turn import Turn
from devhost.indexing import FunctionSpec
from devhost.invocation import Invocation, Invoker


class EngineError(Exception):
    """An operation on an instance cannot be done; `status` is its HTTP status."""

    status = 400


class InstanceNotFound(EngineError):
    status = 404


class InstanceGone(EngineError):
    """The instance exists but has finished, so it cannot take this request."""

    status = 410


class InstanceExists(EngineError):
    status = 409


class UnknownOrchestrator(EngineError):
    status = 404


@dataclass(frozen=True)
class EngineOptions:
    max_activities: int = 20
    max_orchestrators: int = 20


def function_names(spec: FunctionSpec, alias_key: str) -> list[str]:
    """The names an orchestrator or activity answers to: its function name and trigger alias."""
    names = [spec.name]
    alias = spec.trigger.get(alias_key)
    if alias and alias not in names:
        names.append(str(alias))
    return names


class Engine:
    """Owns the live instances of one task hub and moves them forward."""

    def __init__(
        self,
        store: Store,
        invoker: Invoker,
        functions: Iterable[FunctionSpec],
        options: EngineOptions,
        log: logging.Logger,
    ) -> None:
        self.store = store
        self.invoker = invoker
        self.options = options
        self.log = log
        self.orchestrators: dict[str, FunctionSpec] = {}
        self.activities: dict[str, FunctionSpec] = {}
        for spec in functions:
            kind = spec.trigger.type.lower()
            if kind == "orchestrationtrigger":
                for name in function_names(spec, "orchestration"):
                    self.orchestrators[name] = spec
            elif kind == "activitytrigger":
                for name in function_names(spec, "activity"):
                    self.activities[name] = spec
        self.instances: dict[str, InstanceState] = {}
        self.timers = TimerQueue(self.deliver)
        self.turns = TurnScheduler(self.instances, self._run_turn, options.max_orchestrators, log)
        self.activity_workers = ActivityWorkers(self, options.max_activities)
        self._waiters: dict[str, list[asyncio.Future[InstanceRecord]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_inbox = 0
        self._next_activity = 0

    # lifecycle

    async def start(self) -> None:
        """Load every active instance, its inbox and its unfinished activities, and resume."""
        backlog = await recover(self.store, self.instances)
        self._next_inbox, self._next_activity = backlog.last_inbox_id, backlog.last_activity_id
        for row in backlog.inbox:
            self.deliver(row)
        self.activity_workers.dispatch(backlog.activities)
        self._tasks = [
            asyncio.create_task(self.timers.run(), name="durable-timers"),
            *self.turns.start(),
            *self.activity_workers.start(),
        ]
        if backlog.resumed or backlog.activities:
            self.log.info(
                "durable: resumed %d instances, %d activities to (re)run",
                backlog.resumed,
                len(backlog.activities),
            )

    async def stop(self, timeout: float) -> None:
        """Stop taking work, let the turns and activities in flight finish, then close the store."""
        self.turns.stop()
        self.activity_workers.stop()
        self.timers.stop()
        workers = self._tasks
        _, pending = await asyncio.wait(workers, timeout=timeout) if workers else (set(), set())
        for task in pending:
            task.cancel()
        self.store.close()

    # ids

    def new_inbox_id(self) -> int:
        self._next_inbox += 1
        return self._next_inbox

    def new_activity_id(self) -> int:
        self._next_activity += 1
        return self._next_activity

    # invocation

    async def invoke(self, spec: FunctionSpec, context: str, instance_id: str) -> Invocation:
        return await self.invoker.invoke(
            spec, context, invocation_id=new_id(), log_fields={"instanceId": instance_id}
        )

    # instances

    def cannot_start(self, name: str, instance_id: str) -> str | None:
        """Why a new instance cannot start now, or None."""
        if name not in self.orchestrators:
            return f"the function '{name}' doesn't exist or is not an orchestrator function"
        if instance_id in self.instances:
            return (
                f"an orchestration with instance ID '{instance_id}' already exists and is running"
            )
        return None

    def new_instance(
        self,
        name: str,
        instance_id: str,
        payload: str | None,
        version: str | None,
        parent: ParentRef | None,
        commit: Commit,
    ) -> InstanceState:
        """Reserve a new Pending instance and add its creation to the commit."""
        now = format_time(utc_now())
        execution_id = new_id().replace("-", "")
        record = InstanceRecord(
            instance_id=instance_id,
            name=name,
            execution_id=execution_id,
            status="Pending",
            input=payload,
            output=None,
            custom_status=None,
            created_time=now,
            last_updated_time=now,
            parent=parent.to_json() if parent else None,
            version=version,
            engine_state=EngineState().to_json(),
        )
        state = InstanceState(record)
        started = execution_started(record, parent, utc_now())
        commit.statements.extend(
            [
                ("DELETE FROM history WHERE instance_id = ?", (instance_id,)),
                ("DELETE FROM inbox WHERE instance_id = ?", (instance_id,)),
                ("DELETE FROM activities WHERE instance_id = ?", (instance_id,)),
                record.upsert(),
            ]
        )
        commit.add_message(
            InboxRow(
                self.new_inbox_id(), instance_id, 0.0, messages.event_message(started, execution_id)
            )
        )
        self.instances[instance_id] = state
        return state

    async def start_instance(
        self, name: str, instance_id: str | None, payload: str | None, version: str | None = None
    ) -> InstanceRecord:
        """Create an instance (Pending) and queue its first turn; 409 if the id is running."""
        instance_id = instance_id or new_id().replace("-", "")
        if name not in self.orchestrators:
            raise UnknownOrchestrator(
                f"the function '{name}' doesn't exist or is not an orchestrator"
            )
        if instance_id in self.instances:
            raise InstanceExists(
                f"an instance with ID '{instance_id}' already exists and is "
                f"{self.instances[instance_id].record.status}"
            )
        commit = Commit()
        state = self.new_instance(name, instance_id, payload, version, None, commit)
        await self.write(commit)
        return state.record

    async def raise_event(self, instance_id: str, name: str, payload: str | None) -> None:
        await self._require_active(instance_id)
        raised = event(EventType.EVENT_RAISED, utc_now(), Name=name, Input=payload)
        await self._send(instance_id, messages.event_message(raised, None))

    async def control(self, instance_id: str, kind: str, reason: str | None) -> None:
        """Terminate, suspend or resume an active instance."""
        await self._require_active(instance_id)
        await self._send(instance_id, messages.control_message(kind, reason))

    async def wait(self, instance_id: str) -> InstanceRecord:
        """Wait until the instance finishes; its final row."""
        if instance_id not in self.instances:
            return await self._stored_record(instance_id)
        future: asyncio.Future[InstanceRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, []).append(future)
        return await future

    async def _stored_record(self, instance_id: str) -> InstanceRecord:
        record = await self.store.aread(lambda c: get_instance(c, instance_id))
        if record is None:
            raise InstanceNotFound(f"no instance with ID '{instance_id}'")
        return record

    async def _require_active(self, instance_id: str) -> None:
        if instance_id in self.instances:
            return
        record = await self._stored_record(instance_id)
        raise InstanceGone(f"instance '{instance_id}' is {record.status}")

    async def _send(self, instance_id: str, message: dict[str, Any]) -> None:
        commit = Commit()
        commit.add_message(InboxRow(self.new_inbox_id(), instance_id, 0.0, message))
        await self.write(commit)

    async def write(self, commit: Commit) -> None:
        """Make the commit durable, then deliver its messages and dispatch its activities."""
        await self._make_durable(commit)
        self._release(commit)

    async def _make_durable(self, commit: Commit) -> None:
        try:
            await self.store.write(commit.statements)
        except BaseException:
            self._forget(commit.new_instances)
            raise

    def _release(self, commit: Commit) -> None:
        for row in commit.messages:
            self.deliver(row)
        self.activity_workers.dispatch(commit.activities)

    def _forget(self, reserved: list[InstanceState]) -> None:
        """Drop instances reserved for a commit that was not written."""
        for state in reserved:
            if self.instances.get(state.instance_id) is state:
                del self.instances[state.instance_id]

    # delivery

    def deliver(self, row: InboxRow) -> None:
        """Hand a durable inbox row to its instance, or to the timers if it is not yet due."""
        if row.visible_at > time.time():
            self.timers.hold(row)
            return
        state = self.instances.get(row.instance_id)
        if state is None:
            self._discard(row)
            return
        state.inbox.append(row)
        self.turns.schedule(row.instance_id)

    def _discard(self, row: InboxRow) -> None:
        """Drop a message for an instance that has finished or was purged."""
        future = self.store.write([("DELETE FROM inbox WHERE id = ?", (row.id,))])
        future.add_done_callback(lambda f: f.exception())

    # turns

    async def _run_turn(self, state: InstanceState) -> bool:
        turn = Turn(self, state)
        commit = await turn.run()
        if commit is None:
            self._forget(turn.commit.new_instances)  # reserved by an abandoned turn
            return False
        await self._make_durable(commit)
        self._apply_turn(turn, commit)
        self._release(commit)
        return True

    def _apply_turn(self, turn: Turn, commit: Commit) -> None:
        """Bring the live instance up to the turn just made durable."""
        state = turn.state
        state.record = turn.record
        state.engine = turn.ids
        if turn.reset_history:
            state.reset_history()
            state.history_chunks = 0
        if turn.events:
            state.append_history(turn.events)
        consumed = {row.id for row in turn.consumed}
        state.inbox = [row for row in state.inbox if row.id not in consumed]
        for inbox_id in commit.cancelled_timers:
            self.timers.cancel(inbox_id)
        if commit.finished:
            del self.instances[state.instance_id]
            state.inbox.clear()
            for future in self._waiters.pop(state.instance_id, []):
                if not future.done():
                    future.set_result(state.record)
