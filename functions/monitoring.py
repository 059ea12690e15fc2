"""Model monitoring over HTTP (`orchestrations/monitoring.py`), for the models the lifecycle
gates.

- `GET /api/models/{name}/monitoring?top=n` (`Platform.Reader`): the newest reports of
  gold/model_monitoring, newest first (24 by default, at most 100), each with when it ran and
  what started it; 400 for a `top` that is not 1 to 100.
- `POST /api/models/{name}/monitoring` (`Platform.Operator`, privileged: `model_monitoring_run`):
  monitor now, over the past hour; the report and, when it calls for retraining, the retraining
  started or already running; 409 when there is nothing to monitor yet (no champion, no data).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import azure.durable_functions as df
import azure.functions as func
import msgspec

from functions.access import requires
from functions.answers import json_response
from functions.lifecycle import not_gated
from orchestrations.monitoring import monitor_and_act
from shared.bootstrap import current_platform
from shared.identity.roles import Role
from shared.models.alerts import ALERTING
from shared.models.datasets import MissingData
from shared.monitoring.lake_windows import FeaturesChanged
from shared.query_params import top as parse_top

bp = df.Blueprint()
DEFAULT_TOP, MAX_TOP = 24, 100


@bp.route(route="models/{name}/monitoring", methods=["GET"])
@requires(Role.READER)
async def get_model_monitoring(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params["name"]
    if name not in ALERTING:
        return not_gated(name)
    try:
        top = parse_top(req.params.get("top"), DEFAULT_TOP, MAX_TOP)
    except ValueError as error:
        return json_response({"error": str(error)}, 400)
    history = current_platform().monitoring.history
    runs = await asyncio.to_thread(history.latest, name, top)
    reports = [
        {
            "run_at": run.run_at.isoformat(),
            "trigger": run.trigger,
            **msgspec.to_builtins(run.report),
        }
        for run in runs
    ]
    return json_response({"model": name, "reports": reports})


@bp.route(route="models/{name}/monitoring", methods=["POST"])
@bp.durable_client_input(client_name="client")
@requires(Role.OPERATOR, action="model_monitoring_run")
async def run_model_monitoring(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    name = req.route_params["name"]
    if name not in ALERTING:
        return not_gated(name)
    try:
        report, retraining = await monitor_and_act(client, name, dt.datetime.now(dt.UTC), "http")
    except (MissingData, FeaturesChanged) as error:
        return json_response({"error": f"nothing to monitor yet: {error}"}, 409)
    if report is None:
        return json_response(
            {"error": f"{name} has no champion yet: POST /api/models/{name}/train"}, 409
        )
    return json_response({"report": msgspec.to_builtins(report), "retraining": retraining})
