"""The model lifecycle over HTTP (`orchestrations/lifecycle.py`), for the models it gates
(those that score a contract: fraud and maintenance).

- `POST /api/models/{name}/retrain` (`Platform.Operator`, privileged: `model_retraining_started`):
  body empty (the champion's label maturity) or `{"label_maturity_hours": h}`; 202 with the
  Durable check-status body when started, 200 with the body of the retraining of the model in
  progress (one at a time); 404 for a model the lifecycle does not gate.
- `POST /api/models/{name}/approvals/{instance}` (`Platform.Operator`, privileged:
  `model_approval_decided`): `{"decision": "approve" | "reject", "comment": "..."}` for a
  retraining waiting for its approval; 202; 404 for no such retraining of the model; 409 when
  it is not waiting for an approval (the answer says its step).
- `GET /api/models/{name}/monitoring` (`Platform.Reader`) and `POST` (`Platform.Operator`,
  privileged: `model_monitoring_run`): see `functions/monitoring.py`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions.access import caller, requires
from functions.answers import json_response
from orchestrations.lifecycle import APPROVAL_EVENT
from orchestrations.lifecycle_start import RETRAIN, champion_options, policy_of, start_retraining
from orchestrations.medallion_runs import ACTIVE
from shared.bootstrap import current_platform
from shared.identity.roles import Role
from shared.models.alerts import ALERTING
from shared.models.service import BadModelRequest, parse_approval, parse_training

bp = df.Blueprint()
MAX_INSTANCE = 200


def not_gated(name: str) -> func.HttpResponse:
    gated = ", ".join(ALERTING)
    return json_response({"error": f"the lifecycle gates {gated}, not {name[:64]!r}"}, 404)


@bp.route(route="models/{name}/retrain", methods=["POST"])
@bp.durable_client_input(client_name="client")
@requires(Role.OPERATOR, action="model_retraining_started")
async def retrain_model(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    name = req.route_params["name"]
    if name not in ALERTING:
        return not_gated(name)
    try:
        options = parse_training(req.get_body())
    except BadModelRequest as error:
        return json_response({"error": str(error)}, 400)
    platform = current_platform()
    policy = policy_of(platform.settings.lifecycle)
    options = options or champion_options(platform.models.registry, name)
    now = dt.datetime.now(dt.UTC)
    instance, started = await start_retraining(client, name, "http", now, policy, **options)
    answer = client.create_check_status_response(req, instance)
    if started:
        return answer
    return func.HttpResponse(
        answer.get_body(), status_code=200, headers=dict(answer.headers), mimetype=answer.mimetype
    )


@bp.route(route="models/{name}/approvals/{instance}", methods=["POST"])
@bp.durable_client_input(client_name="client")
@requires(Role.OPERATOR, action="model_approval_decided")
async def approve_model(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    name, instance = req.route_params["name"], req.route_params["instance"]
    if name not in ALERTING:
        return not_gated(name)
    unknown = json_response({"error": f"no retraining {instance[:MAX_INSTANCE]!r} of {name}"}, 404)
    if len(instance) > MAX_INSTANCE or not instance.startswith(f"retrain:{name}:"):
        return unknown
    try:
        answer = parse_approval(req.get_body())
    except BadModelRequest as error:
        return json_response({"error": str(error)}, 400)
    status = await client.get_status(instance)
    if status is None or status.runtime_status is None or status.name != RETRAIN:
        return unknown
    step = _step(status.custom_status)
    if status.runtime_status not in ACTIVE or step != "awaiting_approval":
        return json_response(
            {"error": "the retraining is not waiting for an approval", "step": step}, 409
        )
    principal = caller()
    event = {
        **answer,
        "by": {"kind": principal.kind, "id": principal.id, "tenant": principal.tenant},
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
    await client.raise_event(instance, APPROVAL_EVENT, event)
    return json_response({"instanceId": instance, "decision": answer["decision"]}, 202)


def _step(custom_status: Any) -> str | None:
    if isinstance(custom_status, str):
        try:
            custom_status = json.loads(custom_status)
        except ValueError:
            return None
    return custom_status.get("step") if isinstance(custom_status, dict) else None
