"""One engine transaction: its SQL statements and what the engine does once they are durable."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from devhost.durable.instance import InstanceState
from devhost.durable.store import ActivityRow, InboxRow, Statement


@dataclass
class Commit:
    """What a turn or a request writes in one transaction, and what follows once it is durable."""

    statements: list[Statement] = field(default_factory=list)
    messages: list[InboxRow] = field(default_factory=list)
    activities: list[ActivityRow] = field(default_factory=list)
    new_instances: list[InstanceState] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    finished: bool = False

    def add_message(self, row: InboxRow) -> None:
        """Insert the inbox row; it is delivered once the commit is durable."""
        self.statements.append(
            (
                "INSERT INTO inbox (id, instance_id, visible_at, message) VALUES (?, ?, ?, ?)",
                (row.id, row.instance_id, row.visible_at, json.dumps(row.message)),
            )
        )
        self.messages.append(row)

    def add_activity(self, row: ActivityRow) -> None:
        """Insert the activity row; it is dispatched once the commit is durable."""
        self.statements.append(
            (
                "INSERT INTO activities (id, instance_id, execution_id, task_id, name, input) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (row.id, row.instance_id, row.execution_id, row.task_id, row.name, row.input),
            )
        )
        self.activities.append(row)

    def cancel_timer(self, inbox_id: int) -> None:
        """Delete a pending timer's inbox row and drop it from the timer queue."""
        self.statements.append(("DELETE FROM inbox WHERE id = ?", (inbox_id,)))
        self.cancelled_timers.append(inbox_id)
