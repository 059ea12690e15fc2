"""Turn scheduling: a ready queue of instances, and at most one turn of an instance at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from devhost.durable.instance import InstanceState
from devhost.durable.worker_pool import WorkerPool

COALESCE_FLOOR_S = 0.002
COALESCE_CEILING_S = 0.05


class TurnScheduler(WorkerPool[str]):
    """Runs `run_turn` for ready instances on a fixed number of workers.

    `run_turn` returns whether the instance moved forward; only then is it queued again while
    its inbox holds more.
    """

    def __init__(
        self,
        instances: dict[str, InstanceState],
        run_turn: Callable[[InstanceState], Awaitable[bool]],
        workers: int,
        log: logging.Logger,
    ) -> None:
        super().__init__("durable-turn", workers, self._turn)
        self._instances = instances
        self._run_turn = run_turn
        self._log = log
        self._queued: set[str] = set()
        self._busy: set[str] = set()

    def schedule(self, instance_id: str) -> None:
        """Queue a turn of the instance unless one is queued or running."""
        if instance_id in self._queued or instance_id in self._busy:
            return
        self._queued.add(instance_id)
        self.put(instance_id)

    async def _turn(self, instance_id: str) -> None:
        self._queued.discard(instance_id)
        state = self._instances.get(instance_id)
        if state is None:
            return
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
            self._log.exception("durable: a turn of instance %s failed in the engine", instance_id)
        finally:
            self._busy.discard(instance_id)
        # A suspended instance keeps its events until resumed: only progress re-queues.
        if progressed and self._instances.get(instance_id) is state and state.inbox:
            self.schedule(instance_id)
