"""Model training as a Durable orchestration: one activity trains, exports, checks and
registers a model version; the orchestrator retries it when the failure is transient.

- Orchestrator `train_model`, input `{"name", "label_maturity_hours"?, "trigger"}`; output
  `{"name", "version", "metrics", "aliases"}`, or `{"name", "error", "permanent": true}`
  when the model cannot be trained (no such model, too little labelled data: the message
  says what to post or run first).
- The instance id is `train:<name>:<start time>`; `active_training` finds a training of the
  model in progress, so that a second request gets 409 with its id.
- A timer (`train_models`), hourly, trains each model that has no champion yet
  (one with too little data logs what to post or run first: this is how `make run` trains
  its models once labelled data has come). Daily at 04:00 UTC, a model with a champion is
  retrained through the lifecycle (`orchestrations/lifecycle.py`: gate, approval, canary) when
  the lifecycle gates it, and trained as a new version otherwise (recommendations, whose
  versions are not promoted yet: see the README).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from orchestrations.lifecycle_start import champion_options, policy_of, start_retraining
from orchestrations.medallion import RETRY
from orchestrations.medallion_runs import active_instance
from shared.bootstrap import current_platform
from shared.models.alerts import ALERTING
from shared.models.datasets import MissingData
from shared.models.deployment import CHAMPION
from shared.models.registry import ModelNotFound, Registry, RegistryError
from shared.models.training import TRAINERS, TrainingRequest, UnknownModel

TRAIN_MODEL = "train_model"
TRAIN_ACTIVITY = "model_train"
TRAINING_SCHEDULE = "0 0 * * * *"  # hourly: untrained models are tried, champions daily
RETRAIN_HOUR = 4

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.orchestration_trigger(context_name="context", orchestration=TRAIN_MODEL)
def train_model_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    request = {**(context.get_input() or {}), "run_id": context.instance_id}
    context.set_custom_status({"model": request.get("name"), "step": "training"})
    result = yield context.call_activity_with_retry(TRAIN_ACTIVITY, RETRY, request)
    context.set_custom_status({"model": request.get("name"), "step": "done"})
    return dict(result)


@bp.activity_trigger(input_name="request", activity=TRAIN_ACTIVITY)
def model_train(request: dict[str, Any]) -> dict[str, Any]:
    """Train and register; a failure no retry can fix comes back as `permanent`."""
    name = str(request.get("name", ""))
    try:
        training = TrainingRequest(
            name=name,
            run_id=str(request.get("run_id") or ""),
            label_maturity_hours=request.get("label_maturity_hours"),
        )
        models = current_platform().models
        version = models.training.train(training)
        aliases = models.registry.get_model(name).aliases
    except (UnknownModel, MissingData, RegistryError) as error:
        log.warning("model %s not trained: %s", name, error)
        return {"name": name, "error": str(error), "permanent": True}
    return {
        "name": name,
        "version": version.version,
        "metrics": version.metrics,
        "aliases": sorted(alias for alias, v in aliases.items() if v == version.version),
    }


async def active_training(client: df.DurableOrchestrationClient, name: str) -> str | None:
    """The instance id of a training of `name` in progress, if any."""
    return await active_instance(client, TRAIN_MODEL, f"train:{name}:")


async def start_training(
    client: df.DurableOrchestrationClient, name: str, moment: str, **options: Any
) -> str:
    instance = f"train:{name}:{moment}"
    await client.start_new(TRAIN_MODEL, instance, {"name": name, **options})
    return instance


@bp.timer_trigger(schedule=TRAINING_SCHEDULE, arg_name="timer", run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def train_models(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Every hour, each model without a champion is trained (one with too little data logs
    what to post or run first); one with a champion is retrained daily at `RETRAIN_HOUR` UTC.
    Never while a training of it is in progress. (Not on start: a host start would pay for a
    training attempt of every model.)"""
    registry = current_platform().models.registry
    for name, instance in await due_trainings(client, registry, dt.datetime.now(dt.UTC)):
        log.info("training %s: %s", name, instance)


async def due_trainings(
    client: df.DurableOrchestrationClient, registry: Registry, now: dt.datetime
) -> list[tuple[str, str]]:
    """Start the trainings due at `now`; (model, instance id) of each started."""
    moment = now.strftime("%Y%m%dT%H%M%S")
    started = []
    for name in TRAINERS:
        champion = _has_champion(registry, name)
        if champion and now.hour != RETRAIN_HOUR:
            continue
        if champion and name in ALERTING:
            policy = policy_of(current_platform().settings.lifecycle)
            options = champion_options(registry, name)
            instance, new = await start_retraining(client, name, "schedule", now, policy, **options)
            if new:
                started.append((name, instance))
        elif await active_training(client, name) is None:
            started.append((name, await start_training(client, name, moment, trigger="timer")))
    return started


def _has_champion(registry: Registry, name: str) -> bool:
    try:
        return CHAMPION in registry.get_model(name).aliases
    except ModelNotFound:
        return False
