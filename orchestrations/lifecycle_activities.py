"""The model lifecycle's activities (`orchestrations/lifecycle.py`): the gate, the registry
moves of a rollout, a canary step's check, and the record of each decision. JSON in and out;
anything that fails raises, and the orchestrator's retry policy tries again (every activity is
safe to run twice)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import azure.durable_functions as df

from shared.audit.events import Actor, AuditEvent
from shared.bootstrap import current_platform
from shared.models import rollout
from shared.models.alerts import ALERTS_HUB
from shared.models.canary import CanaryPolicy, check
from shared.models.serving_stats import observed

GATE_ACTIVITY = "model_gate"
MOVE_ACTIVITY = "model_rollout_move"
CHECK_ACTIVITY = "model_canary_check"
DECIDE_ACTIVITY = "model_lifecycle_decision"
APPROVALS = ("approved", "approval_refused", "escalated")  # decided by whoever answered
ORCHESTRATION = "orchestration"  # the actor kind of the decisions the orchestration makes

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.activity_trigger(input_name="request", activity=GATE_ACTIVITY)
def model_gate(request: dict[str, Any]) -> dict[str, Any]:
    """Gate the challenger against the current champion and record the validation; a rejection
    is a lifecycle decision of its own."""
    from shared.models.gate import GatePolicy, gate

    name, challenger = str(request["name"]), int(request["challenger"])
    policy = request.get("policy") or {}
    models = current_platform().models
    champion = rollout.current(models.registry, name).champion
    reasons: tuple[str, ...]
    metrics: dict[str, float]
    if champion is None:
        passed, reasons, metrics = False, ("the model has no champion to compare with",), {}
    else:
        gate_policy = GatePolicy(latency_budget_ms=float(policy.get("latency_budget_ms", 10.0)))
        result = gate(models, models.training.lake, name, challenger, champion, gate_policy)
        passed, reasons, metrics = result.passed, result.reasons, dict(result.metrics)
    status = "passed" if passed else "rejected"
    models.registry.set_validation_status(name, challenger, status, reasons)
    if not passed:
        _record(
            name,
            str(request["instance"]),
            "rejected",
            dt.datetime.now(dt.UTC),
            {"kind": ORCHESTRATION, "id": str(request["instance"])},
            from_version=champion,
            to_version=challenger,
            gate=metrics,
            reasons=list(reasons),
        )
    return {"passed": passed, "reasons": list(reasons), "metrics": metrics, "champion": champion}


@bp.activity_trigger(input_name="request", activity=MOVE_ACTIVITY)
def model_rollout_move(request: dict[str, Any]) -> dict[str, Any]:
    """One move of the rollout on the registry (`shared.models.rollout`), and the stage."""
    registry = current_platform().models.registry
    name, action = str(request["name"]), str(request["action"])
    if action == "share":
        rollout.share(registry, name, int(request["version"]), int(request["percent"]))
    elif action == "roll_back":
        rollout.roll_back(registry, name)
    elif action == "promote":
        rollout.promote(registry, name, int(request["version"]))
    elif action != "stage":
        raise ValueError(f"no rollout move {action!r}")
    stage = str(request.get("stage") or {"roll_back": "rolled_back"}.get(action, action))
    rollout.stage(registry, name, stage, str(request["instance"]))
    return {"traffic": rollout.current(registry, name).describe(), "stage": stage}


@bp.activity_trigger(input_name="request", activity=CHECK_ACTIVITY)
def model_canary_check(request: dict[str, Any]) -> dict[str, Any]:
    """A canary step's verdict from what each version served between `since` and `until`."""
    platform = current_platform()
    stats = platform.serving_stats
    stats.flush()  # this process's last seconds, before reading every process's
    name = str(request["name"])
    since = dt.datetime.fromisoformat(str(request["since"]))
    until = dt.datetime.fromisoformat(str(request["until"]))
    policy = request.get("policy") or {}
    canary = CanaryPolicy(
        min_rows=int(policy.get("canary_min_rows", CanaryPolicy.min_rows)),
        max_score_psi=float(policy.get("canary_max_score_psi", CanaryPolicy.max_score_psi)),
    )
    container = stats.container
    assert container is not None  # the platform's figures always go to the document store
    champion = observed(container, name, int(request["champion"]), since, until)
    challenger = observed(container, name, int(request["challenger"]), since, until)
    found = check(champion, challenger, canary)
    log.info("model %s canary check: %s %s", name, found.verdict, "; ".join(found.reasons))
    return {"verdict": found.verdict, "reasons": list(found.reasons), "metrics": found.metrics}


@bp.activity_trigger(input_name="request", activity=DECIDE_ACTIVITY)
def model_lifecycle_decision(request: dict[str, Any]) -> dict[str, Any]:
    """Record a decision: its lifecycle document and its audit record; an escalation is also
    announced on the alerts hub."""
    approval = request.get("approval")
    by = (approval or {}).get("by") if request["decision"] in APPROVALS else None
    actor = dict(by) if by else {"kind": ORCHESTRATION, "id": str(request["instance"])}
    document = _record(
        str(request["name"]),
        str(request["instance"]),
        str(request["decision"]),
        dt.datetime.fromisoformat(str(request["at"])),
        actor,
        from_version=request.get("from_version"),
        to_version=request.get("to_version"),
        gate=request.get("gate"),
        approval=approval,
        reasons=list(request.get("reasons") or ()),
    )
    if document["decision"] == "escalated":
        current_platform().alerts.publisher.publish_now(
            ALERTS_HUB, [rollout.escalation_event(document)]
        )
    return {"id": document["id"]}


def _record(
    name: str,
    instance: str,
    decision: str,
    at: dt.datetime,
    actor: dict[str, str],
    **details: Any,
) -> dict[str, Any]:
    platform = current_platform()
    document = rollout.decision_document(
        model=name, decision=decision, instance=instance, at=at, actor=actor, **details
    )
    platform.documents.container(rollout.LIFECYCLE_CONTAINER).upsert(document)
    moved = f"v{details.get('from_version')} -> v{details.get('to_version')}"
    platform.audit.append(
        AuditEvent(
            action=f"model_{decision}",
            outcome="success",
            actor=Actor(
                actor.get("kind", ORCHESTRATION), actor.get("id", ""), actor.get("tenant", "")
            ),
            resource=f"models/{name}",
            reason=f"{moved}; {document['id']}",
        )
    )
    return document
