"""The training timer: models without a champion are trained at start and hourly; a model with
one only at the retraining hour, through the lifecycle when it gates the model, once per day;
never one already in training."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrations import models as model_orchestrations
from shared.bootstrap import current_platform

pytestmark = pytest.mark.unit


@dataclass
class Status:
    name: str
    instance_id: str
    runtime_status: Any = "Running"


class Client:
    def __init__(self, running: set[str]) -> None:
        self.running = running
        self.started: list[tuple[str, str | None, Any]] = []

    async def get_status_by(self, runtime_status: Any = None) -> list[Any]:
        return [Status("train_model", f"train:{n}:1") for n in self.running]

    async def get_status(self, instance_id: str) -> Status | None:
        known = {i for _, i, _ in self.started}
        return Status("retrain_model", instance_id) if instance_id in known else None

    async def start_new(self, name: str, instance_id: str | None, payload: Any) -> str:
        self.started.append((name, instance_id, payload))
        return instance_id or ""


def _champion(name: str) -> None:
    registry = current_platform().models.registry
    version = registry.create_version(
        name,
        source="s",
        run_id="r",
        metrics={},
        params={},
        signature={},
        input_example=None,
        training_data={},
        code_version="t",
    )
    registry.set_alias(name, "champion", version.version)


@pytest.mark.parametrize(
    ("hour", "expected"), [(13, ["maintenance"]), (4, ["fraud", "maintenance"])]
)
async def test_untrained_models_train_and_champions_wait_for_their_hour(
    platform_env: Path, hour: int, expected: list[str]
) -> None:
    _champion("fraud")
    _champion("recommendations")
    client = Client(running={"recommendations"})
    moment = dt.datetime(2026, 12, 7, hour, 0, tzinfo=dt.UTC)
    registry = current_platform().models.registry
    started = await model_orchestrations.due_trainings(client, registry, moment)  # type: ignore[arg-type]
    assert [name for name, _ in started] == expected
    assert [payload["name"] for _, _, payload in client.started] == expected
    for orchestrator, instance, payload in client.started:
        if payload["name"] == "fraud":  # a champion the lifecycle gates: retrained through it
            assert orchestrator == "retrain_model"
            assert instance == "retrain:fraud:schedule:20261207"
            assert payload["trigger"] == "schedule" and payload["policy"]["steps"][-1] == 100
        else:
            assert orchestrator == "train_model" and instance
            assert instance.startswith(f"train:{payload['name']}:")
    again = await model_orchestrations.due_trainings(client, registry, moment)  # type: ignore[arg-type]
    assert "fraud" not in [name for name, _ in again]  # one retraining per day
