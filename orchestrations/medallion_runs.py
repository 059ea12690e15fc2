"""Starting, listing and cancelling medallion runs through the Durable client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import azure.durable_functions as df

from orchestrations.medallion import CANCEL_EVENT, MAINTENANCE, MEDALLION, child_id

ACTIVE = [df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending]


@dataclass(frozen=True)
class Started:
    """A new run's instance id, or the id of the run already in progress."""

    instance_id: str
    already_running: bool


async def start_run(client: df.DurableOrchestrationClient, trigger: str) -> Started:
    """Start a medallion run unless one is in progress (two would only fight over watermarks)."""
    active = [s for s in await client.get_status_by(runtime_status=ACTIVE) if s.name == MEDALLION]
    if active:
        return Started(str(active[0].instance_id), already_running=True)
    instance_id = await client.start_new(MEDALLION, None, {"trigger": trigger})
    return Started(instance_id, already_running=False)


async def start_maintenance(client: df.DurableOrchestrationClient) -> str:
    return str(await client.start_new(MAINTENANCE, None, None))


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def list_runs(client: df.DurableOrchestrationClient, limit: int) -> list[dict[str, Any]]:
    """The most recent runs first, each with its status and, when done, its summary."""
    runs = [s for s in await client.get_status_all() if s.name == MEDALLION]
    runs.sort(key=lambda s: s.created_time.timestamp() if s.created_time else 0.0, reverse=True)
    listed = []
    for status in runs[:limit]:
        output = status.output if isinstance(status.output, dict) else None
        listed.append(
            {
                "instanceId": status.instance_id,
                "runtimeStatus": status.runtime_status.value if status.runtime_status else None,
                "createdTime": _time(status.created_time),
                "lastUpdatedTime": _time(status.last_updated_time),
                "customStatus": status.custom_status,
                "status": output.get("status") if output else None,
                "totals": output.get("totals") if output else None,
                "failures": output.get("failures") if output else None,
            }
        )
    return listed


async def cancel_run(client: df.DurableOrchestrationClient, instance_id: str) -> list[str]:
    """Send `cancel` to the run's gold models that are still watching a remote run; each
    cancels its run and reports `cancelled`. Answers the models signalled."""
    status = await client.get_status(instance_id)
    tables = (status.custom_status or {}).get("tables", {}) if status else {}
    signalled = []
    for name in tables:
        if not name.startswith("gold/"):
            continue
        child = child_id(instance_id, "gold", name.split("/", 1)[1])
        child_status = await client.get_status(child)
        if child_status and child_status.runtime_status in ACTIVE:
            await client.raise_event(child, CANCEL_EVENT, {"reason": "cancelled by request"})
            signalled.append(name)
    return signalled
