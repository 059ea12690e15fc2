"""Simulated history in a test lake, and the medallion pipeline run over it: what the models
train on."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from benchmarks.traffic import Traffic, simulated_clock
from embedded.documents.store import DocumentStore
from shared.models.artifacts import LocalArtifacts
from shared.models.registry import MODELS_CONTAINER, ModelRegistry
from shared.models.service import Models
from shared.models.training import ModelTraining, TrainingRequest
from shared.pipeline.lake import Lake
from tests.lakedata import event, land, medallion_for

TIME_FIELDS = ("reported_at", "failed_at")


def bronze_row(simulated: dict[str, Any]) -> dict[str, Any]:
    """A simulator event as ingestion lands it (the card number as a stand-in pseudonym)."""
    data = dict(simulated["data"])
    for name in TIME_FIELDS:
        if name in data:
            data[name] = dt.datetime.fromisoformat(data[name])
    if "card_number" in data:
        data["card_last4"] = data["card_number"][-4:]
        data["card_number"] = "ab" * 32
    moment = dt.datetime.fromisoformat(simulated["time"])
    return event(simulated["type"], simulated["id"], moment, source=simulated["source"], **data)


def land_history(
    lake: Path,
    *,
    days: float,
    rate: float,
    seed: int = 3,
    label_delay_scale: float = 1.0,
    end: dt.datetime | None = None,
    fraud_rate: float = 0.02,
) -> dict[str, int]:
    """`days` of simulated traffic ending at `end` (default now) in bronze; counts by type."""
    finish = end or dt.datetime.now(dt.UTC)
    traffic = Traffic(seed, label_delay_scale=label_delay_scale, fraud_rate=fraud_rate)
    ticks = itertools.takewhile(
        lambda moment: moment < finish,
        simulated_clock(finish - dt.timedelta(days=days), rate),
    )
    by_type: dict[str, list[dict[str, Any]]] = {}
    for simulated in traffic.events(ticks):
        by_type.setdefault(simulated["type"], []).append(bronze_row(simulated))
    for event_type, rows in by_type.items():
        land(lake, event_type, rows)
    return {event_type: len(rows) for event_type, rows in by_type.items()}


def refresh(lake: Path, run: str = "run-1") -> None:
    """Silver and gold, rebuilt over the lake's bronze."""
    pipeline = medallion_for(lake)
    for table in pipeline.plan()["silver"]:
        pipeline.build_silver(table, run)
    for model in pipeline.plan()["gold"]:
        submission = pipeline.submit_gold(model, run)
        if submission.run is not None:
            assert submission.run.status == "succeeded", submission
            pipeline.finish_gold(submission, submission.run)


TRAINING_OPTIONS: dict[str, dict[str, Any]] = {
    "fraud": {"label_maturity_hours": 30.0},
    "maintenance": {},
    "recommendations": {},
}


def trained_models(
    lake: Path, folder: Path, names: tuple[str, ...] = tuple(TRAINING_OPTIONS)
) -> Models:
    """A registry and model files in `folder`, with `names` trained on the lake (run ids
    `run-<name>`), each the first champion."""
    registry = ModelRegistry(
        DocumentStore(folder / "documents.sqlite3").container(MODELS_CONTAINER)
    )
    artifacts = LocalArtifacts(folder / "models")
    models = Models(registry, artifacts, ModelTraining(Lake(str(lake)), registry, artifacts))
    for name in names:
        request = TrainingRequest(name, run_id=f"run-{name}", **TRAINING_OPTIONS[name])
        models.training.train(request)
    return models
