"""The durable engine: per-instance turns, activity workers, durable timers, all on SQLite."""

from __future__ import annotations

import asyncio
import functools
import heapq
import json
import logging
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devhost.durable import messages
from devhost.durable.activities import ActivityFailed, execute_activity
from devhost.durable.events import EventType, event, format_time, utc_now
from devhost.durable.instance import EngineState, InstanceState, ParentRef
from devhost.durable.store import (
    ActivityRow,
    InboxRow,
    InstanceRecord,
    Store,
    get_instance,
    load_active,
    max_ids,
    next_chunk,
)
from devhost.durable.turn import Commit, Turn
from devhost.indexing import FunctionSpec
from devhost.invocation import HostShuttingDown, Invocation, Invoker


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


COALESCE_FLOOR_S = 0.002
COALESCE_CEILING_S = 0.05


@dataclass(frozen=True)
class EngineOptions:
    max_activities: int = 20
    max_orchestrators: int = 20


def new_id() -> str:
    """A random (version 4) UUID from the fast PRNG: ids need uniqueness, not secrecy."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


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
        self._ready: asyncio.Queue[str | None] = asyncio.Queue()
        self._queued: set[str] = set()
        self._busy: set[str] = set()
        self._work: asyncio.Queue[ActivityRow | None] = asyncio.Queue()
        self._timers: list[tuple[float, int]] = []
        self._timer_rows: dict[int, InboxRow] = {}
        self._timer_wakeup = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[InstanceRecord]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._next_inbox = 0
        self._next_activity = 0
        self._stopping = False

    # lifecycle

    async def start(self) -> None:
        """Load every active instance, its inbox and its unfinished activities, and resume."""
        records, histories, inbox, activities = await self.store.aread(load_active)
        self._next_inbox, self._next_activity = await self.store.aread(max_ids)
        for record in records:
            state = InstanceState(record, engine=EngineState.from_json(record.engine_state))
            history = histories.get(record.instance_id, [])
            if history:
                state.append_history(history)
            state.history_chunks = await self.store.aread(
                functools.partial(next_chunk, instance_id=record.instance_id)
            )
            self.instances[record.instance_id] = state
        for row in inbox:
            self._deliver(row)
        self._dispatch(activities)
        self._tasks = [asyncio.create_task(self._timer_loop(), name="durable-timers")]
        for index in range(self.options.max_orchestrators):
            self._tasks.append(
                asyncio.create_task(self._turn_worker(), name=f"durable-turn-{index}")
            )
        for index in range(self.options.max_activities):
            self._tasks.append(
                asyncio.create_task(self._activity_worker(), name=f"durable-act-{index}")
            )
        if records or activities:
            self.log.info(
                "durable: resumed %d instances, %d activities to (re)run",
                len(records),
                len(activities),
            )

    async def stop(self, timeout: float) -> None:
        """Stop taking work, let the turns and activities in flight finish, then close the store."""
        self._stopping = True
        for _ in range(self.options.max_orchestrators):
            self._ready.put_nowait(None)
        for _ in range(self.options.max_activities):
            self._work.put_nowait(None)
        self._timer_wakeup.set()
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
        started = event(
            EventType.EXECUTION_STARTED,
            utc_now(),
            Name=name,
            Input=payload,
            Version=version,
            OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
            ParentInstance={"InstanceId": parent.instance_id, "TaskScheduledId": parent.task_id}
            if parent
            else None,
        )
        row = InboxRow(
            self.new_inbox_id(), instance_id, 0.0, messages.event_message(started, execution_id)
        )
        commit.statements.extend(
            [
                ("DELETE FROM history WHERE instance_id = ?", (instance_id,)),
                ("DELETE FROM inbox WHERE instance_id = ?", (instance_id,)),
                ("DELETE FROM activities WHERE instance_id = ?", (instance_id,)),
                record.upsert(),
                (
                    "INSERT INTO inbox (id, instance_id, visible_at, message) VALUES (?, ?, ?, ?)",
                    (row.id, instance_id, 0.0, json.dumps(row.message)),
                ),
            ]
        )
        commit.messages.append(row)
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
        await self._write(commit)
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
            record = await self.store.aread(lambda c: get_instance(c, instance_id))
            if record is None:
                raise InstanceNotFound(f"no instance with ID '{instance_id}'")
            return record
        future: asyncio.Future[InstanceRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, []).append(future)
        return await future

    async def _require_active(self, instance_id: str) -> None:
        if instance_id in self.instances:
            return
        record = await self.store.aread(lambda c: get_instance(c, instance_id))
        if record is None:
            raise InstanceNotFound(f"no instance with ID '{instance_id}'")
        raise InstanceGone(f"instance '{instance_id}' is {record.status}")

    async def _send(self, instance_id: str, message: dict[str, Any]) -> None:
        row = InboxRow(self.new_inbox_id(), instance_id, 0.0, message)
        commit = Commit(
            statements=[
                (
                    "INSERT INTO inbox (id, instance_id, visible_at, message) VALUES (?, ?, ?, ?)",
                    (row.id, instance_id, 0.0, json.dumps(message)),
                )
            ],
            messages=[row],
        )
        await self._write(commit)

    async def _write(self, commit: Commit) -> None:
        try:
            await self.store.write(commit.statements)
        except BaseException:
            for state in commit.new_instances:
                if self.instances.get(state.instance_id) is state:
                    del self.instances[state.instance_id]
            raise
        for row in commit.messages:
            self._deliver(row)
        self._dispatch(commit.activities)

    # delivery and scheduling

    def _deliver(self, row: InboxRow) -> None:
        if row.visible_at > time.time():
            self._timer_rows[row.id] = row
            heapq.heappush(self._timers, (row.visible_at, row.id))
            self._timer_wakeup.set()
            return
        state = self.instances.get(row.instance_id)
        if state is None:
            self._discard(row)
            return
        state.inbox.append(row)
        self._schedule(row.instance_id)

    def _discard(self, row: InboxRow) -> None:
        """Drop a message for an instance that has finished or was purged."""
        future = self.store.write([("DELETE FROM inbox WHERE id = ?", (row.id,))])
        future.add_done_callback(lambda f: f.exception())

    def _schedule(self, instance_id: str) -> None:
        if instance_id in self._queued or instance_id in self._busy:
            return
        self._queued.add(instance_id)
        self._ready.put_nowait(instance_id)

    async def _timer_loop(self) -> None:
        while not self._stopping:
            now = time.time()
            while self._timers and self._timers[0][0] <= now:
                _, row_id = heapq.heappop(self._timers)
                row = self._timer_rows.pop(row_id, None)
                if row is not None:
                    self._deliver(InboxRow(row.id, row.instance_id, 0.0, row.message))
            timeout = self._timers[0][0] - now if self._timers else None
            self._timer_wakeup.clear()
            try:
                await asyncio.wait_for(self._timer_wakeup.wait(), timeout)
            except TimeoutError:
                pass

    # turns

    async def _turn_worker(self) -> None:
        while True:
            instance_id = await self._ready.get()
            if instance_id is None or self._stopping:
                return
            self._queued.discard(instance_id)
            state = self.instances.get(instance_id)
            if state is None:
                continue
            self._busy.add(instance_id)
            progressed = False
            try:
                if state.activities_in_flight and state.last_turn_s > COALESCE_FLOOR_S:
                    # A fan-out is still running: let completions pile up for about as long
                    # as a replay takes, so replays stay a bounded share of the work.
                    await asyncio.sleep(min(state.last_turn_s, COALESCE_CEILING_S))
                started = time.perf_counter()
                progressed = await self._run_turn(state)
                state.last_turn_s = time.perf_counter() - started
            except Exception:
                self.log.exception(
                    "durable: a turn of instance %s failed in the engine", instance_id
                )
            finally:
                self._busy.discard(instance_id)
            # A suspended instance keeps its events until resumed: only progress re-queues.
            if progressed and self.instances.get(instance_id) is state and state.inbox:
                self._schedule(instance_id)

    async def _run_turn(self, state: InstanceState) -> bool:
        turn = Turn(self, state)
        commit = await turn.run()
        if commit is None:
            for child in turn.commit.new_instances:  # reserved by an abandoned turn
                if self.instances.get(child.instance_id) is child:
                    del self.instances[child.instance_id]
            return False
        await self._write_turn(turn, commit)
        return True

    async def _write_turn(self, turn: Turn, commit: Commit) -> None:
        try:
            await self.store.write(commit.statements)
        except BaseException:
            for child in commit.new_instances:
                if self.instances.get(child.instance_id) is child:
                    del self.instances[child.instance_id]
            raise
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
            self._timer_rows.pop(inbox_id, None)
        if commit.finished:
            del self.instances[state.instance_id]
            state.inbox.clear()
            for future in self._waiters.pop(state.instance_id, []):
                if not future.done():
                    future.set_result(state.record)
        for row in commit.messages:
            self._deliver(row)
        self._dispatch(commit.activities)

    def _dispatch(self, activities: list[ActivityRow]) -> None:
        for activity in activities:
            state = self.instances.get(activity.instance_id)
            if state is not None:
                state.activities_in_flight += 1
            self._work.put_nowait(activity)

    # activities

    async def _activity_worker(self) -> None:
        while True:
            row = await self._work.get()
            if row is None or self._stopping:
                return
            try:
                await self._run_activity(row)
            except Exception:
                self.log.exception(
                    "durable: activity %s of %s failed in the engine", row.name, row.instance_id
                )

    def _is_current(self, row: ActivityRow) -> bool:
        state = self.instances.get(row.instance_id)
        return state is not None and state.record.execution_id == row.execution_id

    async def _run_activity(self, row: ActivityRow) -> None:
        try:
            await self._run_current_activity(row)
        finally:
            state = self.instances.get(row.instance_id)
            if state is not None and state.activities_in_flight > 0:
                state.activities_in_flight -= 1

    async def _run_current_activity(self, row: ActivityRow) -> None:
        if not self._is_current(row):
            return
        try:
            result = await execute_activity(self.invoker, self.activities, row, new_id())
            done = event(
                EventType.TASK_COMPLETED, utc_now(), TaskScheduledId=row.task_id, Result=result
            )
        except ActivityFailed as failure:
            done = event(
                EventType.TASK_FAILED,
                utc_now(),
                TaskScheduledId=row.task_id,
                Reason=failure.reason,
                Details=failure.details,
            )
        except HostShuttingDown:
            return  # left in the store: it runs again after a restart
        delete = ("DELETE FROM activities WHERE id = ?", (row.id,))
        if not self._is_current(row):
            await self.store.write([delete])
            return
        message_row = InboxRow(
            self.new_inbox_id(),
            row.instance_id,
            0.0,
            messages.event_message(done, row.execution_id),
        )
        insert = (
            "INSERT INTO inbox (id, instance_id, visible_at, message) VALUES (?, ?, ?, ?)",
            (message_row.id, row.instance_id, 0.0, json.dumps(message_row.message)),
        )
        await self._write(Commit(statements=[delete, insert], messages=[message_row]))
