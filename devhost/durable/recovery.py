"""Recovery at start: rebuild a task hub's live instances and pending work from SQLite."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from devhost.durable.instance import EngineState, InstanceState
from devhost.durable.store import ActivityRow, InboxRow, Store, load_active, max_ids, next_chunk


@dataclass(frozen=True)
class Backlog:
    """The pending work found in the store, and where the row ids continue."""

    resumed: int  # active instances loaded
    inbox: list[InboxRow]
    activities: list[ActivityRow]
    last_inbox_id: int
    last_activity_id: int


async def recover(store: Store, instances: dict[str, InstanceState]) -> Backlog:
    """Add every active instance, with its history, to `instances`; the work still to do."""
    records, histories, inbox, activities = await store.aread(load_active)
    last_inbox_id, last_activity_id = await store.aread(max_ids)
    for record in records:
        state = InstanceState(record, engine=EngineState.from_json(record.engine_state))
        history = histories.get(record.instance_id, [])
        if history:
            state.append_history(history)
        state.history_chunks = await store.aread(
            functools.partial(next_chunk, instance_id=record.instance_id)
        )
        instances[record.instance_id] = state
    return Backlog(len(records), inbox, activities, last_inbox_id, last_activity_id)
