"""Pipeline runs over HTTP and on schedules.

- `POST /api/pipelines/medallion/runs` starts a run: 202 with the Durable check-status body
  (`statusQueryGetUri`, ...); 409 with the id of the run in progress (running, pending or
  suspended).
- `GET /api/pipelines/medallion/runs?top=N` lists recent runs, newest first (N: 1 to 500, 400
  otherwise).
- `POST /api/pipelines/medallion/runs/{id}/cancel` stops the run between steps (the steps in
  flight finish) and cancels its remote gold runs: 200 with `stopping`, the models signalled
  (`cancelled`) and a message; `stopping` is false for a run already finished; 404 for an id
  that is no run.
- Timers: a run every hour, and table maintenance (compaction, Z-order, vacuum) at 02:30 UTC.
- The run reaper (`PIPELINE_REAPER_SCHEDULE`, every minute by default) cancels the remote runs
  whose orchestration was terminated, failed or purged, and logs what it did.
Any other pipeline name is 404.
"""

import json
import logging

import azure.durable_functions as df
import azure.functions as func

from functions.access import requires
from functions.answers import json_response
from orchestrations.medallion import MEDALLION
from orchestrations.medallion_runs import (
    BadRunsQuery,
    UnknownRun,
    cancel_run,
    list_runs,
    parse_top,
    start_maintenance,
    start_run,
)
from shared.bootstrap import current_platform
from shared.config import reaper_schedule
from shared.identity.roles import Role
from shared.pipeline.reaper import DurableStatuses

bp = df.Blueprint()


def _unknown(name: str) -> func.HttpResponse:
    return json_response({"error": f"no pipeline {name!r}; the pipelines are: {MEDALLION}"}, 404)


@bp.route(route="pipelines/{name}/runs", methods=["POST"])
@bp.durable_client_input(client_name="client")
@requires(Role.OPERATOR, action="pipeline_started")
async def start_pipeline_run(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    name = req.route_params["name"]
    if name != MEDALLION:
        return _unknown(name)
    started = await start_run(client, "http")
    if started.already_running:
        return json_response(
            {"error": "a run is in progress", "instanceId": started.instance_id}, 409
        )
    return client.create_check_status_response(req, started.instance_id)


@bp.route(route="pipelines/{name}/runs", methods=["GET"])
@bp.durable_client_input(client_name="client")
@requires(Role.OPERATOR)
async def list_pipeline_runs(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    name = req.route_params["name"]
    if name != MEDALLION:
        return _unknown(name)
    try:
        top = parse_top(req.params.get("top"))
    except BadRunsQuery as error:
        return json_response({"error": str(error)}, 400)
    return json_response({"pipeline": name, "runs": await list_runs(client, top)})


@bp.route(route="pipelines/{name}/runs/{instance_id}/cancel", methods=["POST"])
@bp.durable_client_input(client_name="client")
@requires(Role.OPERATOR, action="pipeline_cancelled")
async def cancel_pipeline_run(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    name = req.route_params["name"]
    if name != MEDALLION:
        return _unknown(name)
    try:
        cancellation = await cancel_run(client, req.route_params["instance_id"])
    except UnknownRun as error:
        return json_response({"error": str(error)}, 404)
    return json_response(cancellation.to_json())


@bp.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
@bp.durable_client_input(client_name="client")
async def hourly_pipeline_run(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    await start_run(client, "hourly")


@bp.timer_trigger(schedule="0 30 2 * * *", arg_name="timer")
@bp.durable_client_input(client_name="client")
async def nightly_table_maintenance(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    await start_maintenance(client)


@bp.timer_trigger(schedule=reaper_schedule(), arg_name="timer")
@bp.durable_client_input(client_name="client")
async def pipeline_run_reaper(
    timer: func.TimerRequest, client: df.DurableOrchestrationClient
) -> None:
    report = await current_platform().reaper.sweep(DurableStatuses(client))
    if report.acted:
        logging.getLogger(__name__).info("run reaper: %s", json.dumps(report.to_json()))
