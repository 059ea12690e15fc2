"""A rollout's moves on the registry, and the record each decision leaves.

Every move is one or two registry writes that are safe to repeat (a Durable activity may run
again after a crash), in the order that keeps serving right between them
(`shared.models.deployment`):

- `share(percent)`: the `challenger` alias on the version, then the `canary_percent` tag;
- `roll_back`: the `challenger` alias deleted first, the one write that returns every entity to
  the champion, then the tag reset;
- `promote`: the `champion` alias moved to the challenger (which then serves everyone), then
  the `challenger` alias deleted and the tag reset.

Each promotion, rejection, rollback, approval and escalation writes a lifecycle document (container
`model_lifecycle`, partitioned by model): who or what decided, when, from which version to
which, the gate's figures and the approval. The tamper-evident audit trail gets a record of
each too (`shared.audit`), which names the document. An escalation is also announced on the
alerts hub (`escalation_event`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from shared.audit.fields import clean
from shared.documents.port import ContainerSpec, DocumentContainer, Json, Query
from shared.events.publisher import OutgoingEvent
from shared.models.deployment import (
    CANARY_PERCENT,
    CHALLENGER,
    CHAMPION,
    INSTANCE,
    STAGE,
    Traffic,
)
from shared.models.registry_port import ModelNotFound, RegisteredModel, Registry
from shared.models.service import COMMENT_LIMIT

LIFECYCLE_CONTAINER = ContainerSpec("model_lifecycle", "/model")
ESCALATION_EVENT_TYPE = "platform.model.escalation"  # on the alerts hub
DECISIONS = ("promoted", "rejected", "rolled_back", "approved", "approval_refused", "escalated")


def share(registry: Registry, name: str, version: int, percent: int) -> None:
    """The challenger `version` takes `percent` of the entities."""
    registry.set_alias(name, CHALLENGER, version)
    registry.set_model_tag(name, CANARY_PERCENT, str(percent))


def roll_back(registry: Registry, name: str) -> None:
    """Every entity back to the champion (the challenger alias goes first, in one write)."""
    registry.delete_alias(name, CHALLENGER)
    registry.set_model_tag(name, CANARY_PERCENT, "0")


def promote(registry: Registry, name: str, version: int) -> int | None:
    """`version` becomes the champion; the champion it replaced (None for the first)."""
    before = current(registry, name).champion
    registry.set_alias(name, CHAMPION, version)
    registry.delete_alias(name, CHALLENGER)
    registry.set_model_tag(name, CANARY_PERCENT, "0")
    return before


def stage(registry: Registry, name: str, step: str, instance: str) -> None:
    """Where the model's lifecycle is, and the orchestration driving it, for `GET` to show
    (nothing before the model's first version is registered: there is no model to tag)."""
    try:
        registry.set_model_tag(name, STAGE, step)
        registry.set_model_tag(name, INSTANCE, instance)
    except ModelNotFound:
        return


def current(registry: Registry, name: str) -> Traffic:
    try:
        return Traffic.of(registry.get_model(name))
    except ModelNotFound:
        return Traffic(None)


def lifecycle_summary(model: RegisteredModel) -> dict[str, Any]:
    """The lifecycle part of `GET /api/models/{name}`: stage, traffic split, instance id."""
    return {
        "stage": model.tags.get(STAGE, "serving" if CHAMPION in model.aliases else "untrained"),
        "traffic": Traffic.of(model).describe(),
        "instance_id": model.tags.get(INSTANCE),
    }


def decision_document(
    *,
    model: str,
    decision: str,
    instance: str,
    at: dt.datetime,
    actor: Mapping[str, str],
    from_version: int | None,
    to_version: int | None,
    gate: Mapping[str, float] | None = None,
    approval: Mapping[str, Any] | None = None,
    reasons: tuple[str, ...] | list[str] = (),
) -> dict[str, Json]:
    """A lifecycle decision as its document records it; its id is the instance and decision,
    so an activity run again writes the same document."""
    if decision not in DECISIONS:
        raise ValueError(f"decision is one of {', '.join(DECISIONS)}")
    return {
        "id": clean(f"{instance}:{decision}", 256),
        "model": model,
        "decision": decision,
        "instance_id": clean(instance, 256),
        "at": at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "actor": {key: clean(value, 128) for key, value in actor.items()},
        "from_version": from_version,
        "to_version": to_version,
        "gate": {key: float(value) for key, value in (gate or {}).items()},
        "approval": _approval(approval),
        "reasons": [clean(reason, 512) for reason in reasons],
    }


def _approval(approval: Mapping[str, Any] | None) -> dict[str, Json] | None:
    if approval is None:
        return None
    by = approval.get("by") or {}
    return {
        "decision": clean(approval.get("decision"), 16),
        "comment": clean(approval.get("comment"), COMMENT_LIMIT),
        "by": {key: clean(value, 128) for key, value in dict(by).items()},
        "at": clean(approval.get("at"), 40),
        "timed_out": bool(approval.get("timed_out", False)),
    }


def escalation_event(document: Mapping[str, Any]) -> OutgoingEvent:
    """An escalation (no approval in time, and the policy stops) as a CloudEvent for the alerts
    hub, where operators watch: its id is the decision's, so a retried activity's second send
    is the same event (consumers deduplicate on it, as on any Event Hubs stream)."""
    body = {
        "specversion": "1.0",
        "id": document["id"],
        "type": ESCALATION_EVENT_TYPE,
        "source": f"/models/{document['model']}",
        "subject": document["instance_id"],
        "time": document["at"],
        "datacontenttype": "application/json",
        "data": {
            "model": document["model"],
            "instance_id": document["instance_id"],
            "from_version": document["from_version"],
            "to_version": document["to_version"],
            "message": (
                f"model {document['model']}: challenger v{document['to_version']} passed the "
                f"gate but was not approved in time; approve or reject it with a new retraining"
            ),
        },
    }
    return OutgoingEvent(json.dumps(body).encode(), partition_key=str(document["model"]))


def decisions(container: DocumentContainer, model: str, limit: int = 20) -> list[dict[str, Json]]:
    """The model's lifecycle decisions, newest first."""
    page = container.query(
        Query(order_by=(("/at", True),), partition_key=model, page_size=max(1, min(limit, 100)))
    )
    return page.documents[:limit]
