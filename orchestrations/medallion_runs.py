"""Starting, listing and cancelling medallion runs through the Durable client."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import azure.durable_functions as df

from orchestrations.medallion import CANCEL_EVENT, MAINTENANCE, MEDALLION, child_id

# A suspended run is still in progress: resumed, it goes on from where it stopped.
ACTIVE = [
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.Suspended,
]


async def active_instance(
    client: df.DurableOrchestrationClient, orchestrator: str, prefix: str
) -> str | None:
    """The id of an instance of `orchestrator` in progress whose id starts with `prefix`."""
    for status in await client.get_status_by(runtime_status=ACTIVE):
        if status.name == orchestrator and str(status.instance_id).startswith(prefix):
            return str(status.instance_id)
    return None


TOP_MAX = 500
_DIGITS = re.compile(r"[0-9]{1,9}")
# Durable instance ids cannot hold these (and the client would put them into a URL as they are).
_NOT_IN_IDS = re.compile(r"[/\\#?\x00-\x1f\x7f]")


class BadRunsQuery(ValueError):
    """A query parameter of the runs API that cannot be used; the message says why."""


class UnknownRun(LookupError):
    """No run of this pipeline with that instance id."""


def parse_top(text: str | None, default: int = 20) -> int:
    """`top`: ASCII digits, 1 to 500."""
    if text is None:
        return default
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= TOP_MAX:
        raise BadRunsQuery(f"top must be a whole number from 1 to {TOP_MAX}")
    return int(text)


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


@dataclass(frozen=True)
class Cancellation:
    """What a cancel did: the run's status when asked, whether the run itself was told to stop
    (it then starts no further step; the steps in flight finish), and the gold models whose
    remote runs were told to cancel."""

    instance_id: str
    runtime_status: str
    stopping: bool
    signalled: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        if self.stopping:
            message = "the run starts no further step; the steps in flight finish"
        else:
            message = f"the run is {self.runtime_status}; there is nothing to cancel"
        return {
            "instanceId": self.instance_id,
            "runtimeStatus": self.runtime_status,
            "stopping": self.stopping,
            "cancelled": self.signalled,
            "message": message,
        }


async def cancel_run(client: df.DurableOrchestrationClient, instance_id: str) -> Cancellation:
    """Tell an active run to stop between steps, and its gold models still watching a remote
    run to cancel it (each reports `cancelled`). Raises UnknownRun for an id that is no run."""
    if not instance_id or _NOT_IN_IDS.search(instance_id):
        raise UnknownRun(f"no {MEDALLION} run {instance_id!r}")  # no instance id holds these
    status = await client.get_status(instance_id)
    if status is None or status.name != MEDALLION or status.runtime_status is None:
        raise UnknownRun(f"no {MEDALLION} run {instance_id!r}")
    runtime = status.runtime_status.value
    if status.runtime_status not in ACTIVE:
        return Cancellation(instance_id, runtime, stopping=False)
    reason = {"reason": "cancelled by request"}
    finished = await _signal(client, instance_id, reason)
    if finished is not None:  # it ended between the status read and the event
        return Cancellation(instance_id, finished, stopping=False)
    tables = (status.custom_status or {}).get("tables", {})
    signalled = []
    for name in tables:
        if not name.startswith("gold/"):
            continue
        child = child_id(instance_id, "gold", name.split("/", 1)[1])
        child_status = await client.get_status(child)
        if child_status and child_status.runtime_status in ACTIVE:
            if await _signal(client, child, reason) is None:
                signalled.append(name)
    return Cancellation(instance_id, runtime, stopping=True, signalled=signalled)


async def _signal(
    client: df.DurableOrchestrationClient, instance_id: str, reason: dict[str, str]
) -> str | None:
    """Raise the cancel event; None when it was raised, or the instance's runtime status when
    it had finished meanwhile (the SDK raises a bare Exception for a 410 Gone)."""
    try:
        await client.raise_event(instance_id, CANCEL_EVENT, reason)
        return None
    except Exception:
        status = await client.get_status(instance_id)
        if status is None or status.runtime_status is None:
            raise
        if status.runtime_status in ACTIVE:
            raise  # still running: the failure is something else
        return str(status.runtime_status.value)
