"""Activity workers: run scheduled activities and send each outcome to its orchestration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devhost.durable import messages
from devhost.durable.activities import ActivityFailed, execute_activity
from devhost.durable.commit import Commit
from devhost.durable.events import EventType, event, utc_now
from devhost.durable.ids import new_id
from devhost.durable.store import ActivityRow, InboxRow
from devhost.durable.worker_pool import WorkerPool
from devhost.invocation import HostShuttingDown

if TYPE_CHECKING:
    from devhost.durable.engine import Engine


class ActivityWorkers(WorkerPool[ActivityRow]):
    """Activity rows worked off by a fixed number of workers."""

    def __init__(self, engine: Engine, workers: int) -> None:
        super().__init__("durable-act", workers, self._work)
        self._engine = engine

    def dispatch(self, activities: list[ActivityRow]) -> None:
        """Queue durable activity rows, counting them against their instance's fan-out."""
        for activity in activities:
            state = self._engine.instances.get(activity.instance_id)
            if state is not None:
                state.activities_in_flight += 1
            self.put(activity)

    async def _work(self, row: ActivityRow) -> None:
        try:
            await self._run(row)
        except Exception:
            self._engine.log.exception(
                "durable: activity %s of %s failed in the engine", row.name, row.instance_id
            )

    def _is_current(self, row: ActivityRow) -> bool:
        state = self._engine.instances.get(row.instance_id)
        return state is not None and state.record.execution_id == row.execution_id

    async def _run(self, row: ActivityRow) -> None:
        try:
            await self._run_current(row)
        finally:
            state = self._engine.instances.get(row.instance_id)
            if state is not None and state.activities_in_flight > 0:
                state.activities_in_flight -= 1

    async def _run_current(self, row: ActivityRow) -> None:
        if not self._is_current(row):
            return
        engine = self._engine
        try:
            result = await execute_activity(engine.invoker, engine.activities, row, new_id())
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
            await engine.store.write([delete])
            return
        commit = Commit(statements=[delete])
        commit.add_message(
            InboxRow(
                engine.new_inbox_id(),
                row.instance_id,
                0.0,
                messages.event_message(done, row.execution_id),
            )
        )
        await engine.write(commit)
