"""The engine's in-memory view of one running orchestration instance."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from devhost.durable.events import REPLAYED_TYPES, EventType, event
from devhost.durable.retry import DurableRetryOptions
from devhost.durable.store import InboxRow, InstanceRecord


@dataclass
class ParentRef:
    """Where a sub-orchestration reports its outcome."""

    instance_id: str
    execution_id: str
    task_id: int

    def to_json(self) -> str:
        return json.dumps([self.instance_id, self.execution_id, self.task_id])

    @classmethod
    def from_json(cls, text: str | None) -> ParentRef | None:
        if not text:
            return None
        instance_id, execution_id, task_id = json.loads(text)
        return cls(instance_id, execution_id, int(task_id))


def execution_started(
    record: InstanceRecord, parent: ParentRef | None, timestamp: datetime
) -> dict[str, Any]:
    """The ExecutionStarted event that opens the record's current execution."""
    return event(
        EventType.EXECUTION_STARTED,
        timestamp,
        Name=record.name,
        Input=record.input,
        Version=record.version,
        OrchestrationInstance={
            "InstanceId": record.instance_id,
            "ExecutionId": record.execution_id,
        },
        ParentInstance={"InstanceId": parent.instance_id, "TaskScheduledId": parent.task_id}
        if parent
        else None,
    )


@dataclass
class RetryGroup:
    """A `call_*_with_retry` task: the attempts the engine runs behind one SDK task."""

    kind: str  # "activity" or "sub"
    name: str
    input: str | None
    policy: DurableRetryOptions
    started: float
    attempts: int = 1
    instance_id: str | None = None
    version: str | None = None
    timed_out: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "input": self.input,
            "policy": self.policy.to_json(),
            "started": self.started,
            "attempts": self.attempts,
            "instance_id": self.instance_id,
            "version": self.version,
            "timed_out": self.timed_out,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> RetryGroup:
        return cls(
            kind=document["kind"],
            name=document["name"],
            input=document["input"],
            policy=DurableRetryOptions.from_json(document["policy"]),
            started=document["started"],
            attempts=document["attempts"],
            instance_id=document.get("instance_id"),
            version=document.get("version"),
            timed_out=document.get("timed_out", False),
        )


@dataclass
class EngineState:
    """What replay alone cannot tell the engine: task numbering, pending timers, retries."""

    next_id: int = 0
    signatures: list[tuple[int, str]] = field(default_factory=list)
    action_ids: list[int | None] = field(default_factory=list)
    timers: dict[int, int] = field(default_factory=dict)  # timer task id -> inbox row id
    groups: dict[int, RetryGroup] = field(default_factory=dict)  # group id -> group
    task_groups: dict[int, int] = field(default_factory=dict)  # attempt task id -> group id
    retry_timers: dict[int, int] = field(default_factory=dict)  # retry timer id -> group id

    def copy(self) -> EngineState:
        """A copy a turn can change freely: retry groups are the only mutable values."""
        return EngineState(
            next_id=self.next_id,
            signatures=list(self.signatures),
            action_ids=list(self.action_ids),
            timers=dict(self.timers),
            groups={key: dataclasses.replace(group) for key, group in self.groups.items()},
            task_groups=dict(self.task_groups),
            retry_timers=dict(self.retry_timers),
        )

    def allocate(self) -> int:
        task_id = self.next_id
        self.next_id += 1
        return task_id

    def to_json(self) -> str:
        return json.dumps(
            {
                "next_id": self.next_id,
                "signatures": self.signatures,
                "action_ids": self.action_ids,
                "timers": self.timers,
                "groups": {key: group.to_json() for key, group in self.groups.items()},
                "task_groups": self.task_groups,
                "retry_timers": self.retry_timers,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> EngineState:
        if not text:
            return cls()
        document = json.loads(text)
        return cls(
            next_id=document["next_id"],
            signatures=[(int(kind), str(name)) for kind, name in document["signatures"]],
            action_ids=list(document["action_ids"]),
            timers={int(key): int(value) for key, value in document["timers"].items()},
            groups={int(k): RetryGroup.from_json(v) for k, v in document["groups"].items()},
            task_groups={int(k): int(v) for k, v in document["task_groups"].items()},
            retry_timers={int(k): int(v) for k, v in document["retry_timers"].items()},
        )


@dataclass
class InstanceState:
    """A live instance: its row, its history (with replay JSON cached) and its inbox."""

    record: InstanceRecord
    history: list[dict[str, Any]] = field(default_factory=list)
    engine: EngineState = field(default_factory=EngineState)
    inbox: list[InboxRow] = field(default_factory=list)
    history_chunks: int = 0
    activities_in_flight: int = 0
    last_turn_s: float = 0.0
    _replay_json: list[str] = field(default_factory=list)

    @property
    def instance_id(self) -> str:
        return self.record.instance_id

    @property
    def parent(self) -> ParentRef | None:
        return ParentRef.from_json(self.record.parent)

    def append_history(self, events: list[dict[str, Any]]) -> None:
        """Record committed events; the ones the SDK replays are kept pre-encoded as played."""
        self.history.extend(events)
        for item in events:
            if item["EventType"] in REPLAYED_TYPES:
                self._replay_json.append(json.dumps({**item, "IsPlayed": True}))
        self.history_chunks += 1

    def reset_history(self) -> None:
        self.history = []
        self._replay_json = []

    def replay_context(self, new_events: list[dict[str, Any]]) -> str:
        """The orchestration trigger's context JSON for a turn over these new events."""
        parts = list(self._replay_json)
        parts.extend(json.dumps(item) for item in new_events if item["EventType"] in REPLAYED_TYPES)
        parent = self.parent
        head = json.dumps(
            {
                "instanceId": self.instance_id,
                "isReplaying": bool(self._replay_json),
                "parentInstanceId": parent.instance_id if parent else None,
                "input": self.record.input,
                "upperSchemaVersion": 2,
            }
        )
        return '{"history": [' + ", ".join(parts) + "], " + head[1:]
