"""Model monitoring on a timer (hourly) and on request, and the retraining it calls for.

`monitor_and_act` runs one model's monitoring over the past hour (`shared.monitoring`), keeps
the report in gold/model_monitoring, and when the report's action is `retrain` starts the
model's retraining with the `drift` trigger: one per model and hour, so a drift found again by
the next request, or by the timer in the same hour, starts nothing more
(`orchestrations/lifecycle_start.py`). A model with a rollout in progress is monitored all the
same and starts nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from orchestrations.lifecycle_start import champion_options, policy_of, start_retraining
from shared.bootstrap import current_platform
from shared.models.alerts import ALERTING
from shared.models.datasets import MissingData
from shared.monitoring.report import MonitoringReport

MONITORING_SCHEDULE = "0 5 * * * *"  # five past every hour: the hour before is complete

bp = df.Blueprint()
log = logging.getLogger(__name__)


async def monitor_and_act(
    client: df.DurableOrchestrationClient, name: str, now: dt.datetime, trigger: str
) -> tuple[MonitoringReport | None, dict[str, Any] | None]:
    """The model's report (None without a champion), and the retraining it started or found
    (`{"instanceId", "started"}`), if it calls for one."""
    platform = current_platform()
    report = await asyncio.to_thread(platform.monitoring.run, name, now, trigger)
    if report is None or report.action != "retrain":
        return report, None
    policy = policy_of(platform.settings.lifecycle)
    options = champion_options(platform.models.registry, name)
    instance, started = await start_retraining(
        client, name, "drift", now, policy, reasons=list(report.reasons[:10]), **options
    )
    log.info("model %s: %s; retraining %s", name, report.reasons[0], instance)
    return report, {"instanceId": instance, "started": started}


@bp.timer_trigger(schedule=MONITORING_SCHEDULE, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def monitor_models(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Every hour, each model the lifecycle gates is monitored; one without enough data yet is
    logged and skipped."""
    now = dt.datetime.now(dt.UTC)
    for name in ALERTING:
        try:
            await monitor_and_act(client, name, now, "timer")
        except MissingData as error:
            log.info("model %s not monitored: %s", name, error)
