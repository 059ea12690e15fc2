"""Starting a model's retraining (`orchestrations/lifecycle.py`): one instance per model and
trigger window, and one at a time per model, whoever asks (drift, the schedule, a request)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import azure.durable_functions as df

from orchestrations.medallion_runs import ACTIVE, active_instance
from shared.config import LifecycleSettings
from shared.models.canary import CanaryPolicy
from shared.models.deployment import CHAMPION
from shared.models.registry_checks import RegistryError
from shared.models.registry_port import Registry
from shared.models.training import MATURITY_LIMITS_H

RETRAIN = "retrain_model"
TRIGGERS = ("drift", "schedule", "http")
_WINDOW = re.compile(r"[0-9]{8}(T[0-9]{2}([0-9]{4})?)?")


def policy_of(settings: LifecycleSettings) -> dict[str, Any]:
    """The policy a retraining follows, from the settings at its start (it travels in the
    orchestration's input, so a replay follows the same one)."""
    canary = CanaryPolicy()
    return {
        **dataclasses.asdict(settings),
        "steps": list(canary.steps),
        "max_waits": canary.max_waits,
    }


def champion_options(registry: Registry, name: str) -> dict[str, Any]:
    """A challenger is trained as its champion was: with the champion's label maturity, when
    its training set one (a demo's labels come faster than real ones)."""
    try:
        champion = registry.get_version_by_alias(name, CHAMPION)
    except RegistryError:
        return {}
    try:
        hours = float(champion.params.get("label_maturity_hours", ""))
    except ValueError:
        return {}
    low, high = MATURITY_LIMITS_H
    return {"label_maturity_hours": hours} if low <= hours <= high else {}


def trigger_window(trigger: str, moment: dt.datetime) -> str:
    """The window a trigger's retraining is one per: the day for the schedule, the hour for
    drift (the monitoring window that found it), the second for a request (a request repeated
    at once gets the same instance; one made after a rejection starts another)."""
    utc = moment.astimezone(dt.UTC)
    formats = {"schedule": "%Y%m%d", "drift": "%Y%m%dT%H"}
    return utc.strftime(formats.get(trigger, "%Y%m%dT%H%M%S"))


def retrain_instance(name: str, trigger: str, window: str) -> str:
    if trigger not in TRIGGERS or not _WINDOW.fullmatch(window):
        raise ValueError(f"a retraining's trigger is one of {TRIGGERS} and its window a time")
    return f"retrain:{name}:{trigger}:{window}"


async def start_retraining(
    client: df.DurableOrchestrationClient,
    name: str,
    trigger: str,
    moment: dt.datetime,
    policy: dict[str, Any],
    **options: Any,
) -> tuple[str, bool]:
    """Start the retraining of `name` for the trigger's window at `moment`; (instance id, True)
    when started, or the instance that already has this window, or another retraining of the
    model in progress, and False."""
    window = trigger_window(trigger, moment)
    instance = retrain_instance(name, trigger, window)
    existing = await client.get_status(instance)
    if existing is not None and existing.runtime_status is not None:
        return instance, False
    running = await active_instance(client, RETRAIN, f"retrain:{name}:")
    if running is not None:
        return running, False
    body = {"name": name, "trigger": trigger, "window": window, "policy": policy, **options}
    try:
        await client.start_new(RETRAIN, instance, body)
    except Exception:  # another start won the race for this id: that instance is the one
        existing = await client.get_status(instance)
        if existing is None or existing.runtime_status not in ACTIVE:
            raise
        return instance, False
    return instance, True
