"""Retry groups: the attempts and retry timers the engine numbers behind one SDK retry task."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from devhost.durable.events import EventType
from devhost.durable.instance import EngineState, RetryGroup
from devhost.durable.retry import DurableRetryOptions

RETRY_TIMEOUT_REASON = "the retry timeout of the retry options has expired"


@dataclass(frozen=True)
class RetryTimer:
    """Create retry timer `timer_id` to fire after `delay_ms`."""

    timer_id: int
    delay_ms: float


@dataclass(frozen=True)
class RetryAttempt:
    """Run the group's next attempt as task `task_id` (or fail it if the group timed out)."""

    task_id: int
    group: RetryGroup


def open_group(ids: EngineState, task_id: int, kind: str, name: str, raw: dict[str, Any]) -> None:
    """Start a retry group for a `call_*_with_retry` action; its first attempt is `task_id`."""
    ids.groups[task_id] = RetryGroup(
        kind=kind,
        name=name,
        input=raw.get("input"),
        policy=DurableRetryOptions.from_json(raw.get("retryOptions")),
        started=time.time(),
        instance_id=raw.get("instanceId"),
        version=raw.get("version"),
    )
    ids.task_groups[task_id] = task_id


def next_retry_step(ids: EngineState, first: dict[str, Any]) -> RetryTimer | RetryAttempt | None:
    """Number the retry timer or the next attempt the SDK creates for this event, if any."""
    kind = first["EventType"]
    if kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED):
        group_id = ids.task_groups.get(first.get("TaskScheduledId", -1))
        if group_id is None:
            return None
        group = ids.groups[group_id]
        elapsed_ms = (time.time() - group.started) * 1000
        if group.attempts >= group.policy.max_attempts:
            delay_ms = 0.0  # the SDK fails the task once this last timer fires
        elif group.policy.timed_out(elapsed_ms):
            group.timed_out = True
            delay_ms = 0.0
        else:
            delay_ms = group.policy.delay_ms(group.attempts)
        timer_id = ids.allocate()
        ids.retry_timers[timer_id] = group_id
        return RetryTimer(timer_id, delay_ms)
    if kind == EventType.TIMER_FIRED and first.get("TimerId") in ids.retry_timers:
        group_id = ids.retry_timers.pop(first["TimerId"])
        group = ids.groups[group_id]
        if group.attempts >= group.policy.max_attempts:
            return None
        group.attempts += 1
        task_id = ids.allocate()
        ids.task_groups[task_id] = group_id
        return RetryAttempt(task_id, group)
    return None
