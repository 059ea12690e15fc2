"""The training timer: models without a champion are trained at start and hourly; a model with
one only at the retraining hour; never one already in training."""

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


class Client:
    def __init__(self, running: set[str]) -> None:
        self.running = running
        self.started: list[tuple[str, str | None, Any]] = []

    async def get_status_by(self, runtime_status: Any = None) -> list[Any]:
        return [Status("train_model", f"train:{n}:1") for n in self.running]

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
    assert all(i and i.startswith(f"train:{p['name']}:") for _, i, p in client.started)
