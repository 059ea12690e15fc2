"""Training a model: its trainer reads the lake, the files go beside it (written once, under
the run), and the registry records a new version; the first version of a model becomes its
`champion` (promotion of later ones belongs to the model lifecycle's gate).

MLflow's layout: a run's files live under `<name>/runs/<run id>/`, and the version's `source`
names that folder, so a version never points at files another run could write.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared import __version__
from shared.models import fraud, maintenance, recommendations
from shared.models.artifacts import ArtifactExists, ArtifactStore
from shared.models.datasets import Reads
from shared.models.deployment import CHAMPION
from shared.models.registry import ModelNotFound, ModelVersion, Registry
from shared.models.trained import TrainedModel
from shared.pipeline.lake import Lake

ONNX_FILE = "model.onnx"
CARD_FILE = "card.json"
Trainer = Callable[..., TrainedModel]
TRAINERS: dict[str, Trainer] = {
    fraud.NAME: fraud.train,
    maintenance.NAME: maintenance.train,
    recommendations.NAME: recommendations.train,
}
MATURITY_LIMITS_H = (1.0, 24.0 * 60)  # what a request may ask of a label's maturity
_RUN_ID = re.compile(r"[^A-Za-z0-9_.-]")  # a run's folder name: the orchestration's id, made safe


class UnknownModel(LookupError):
    """No model of that name is trained here."""


@dataclass(frozen=True)
class TrainingRequest:
    """What to train; `label_maturity_hours` overrides how long a label is waited for (fraud:
    a chargeback, 5 days; maintenance: the horizon and the report delay), for demos whose
    labels come faster (`simulate --label-delay-scale`)."""

    name: str
    run_id: str = ""
    label_maturity_hours: float | None = None


@dataclass
class ModelTraining:
    lake: Lake
    registry: Registry
    artifacts: ArtifactStore
    code_version: str = __version__

    def train(self, request: TrainingRequest) -> ModelVersion:
        trainer = TRAINERS.get(request.name)
        if trainer is None:
            raise UnknownModel(
                f"no model named {request.name[:64]!r}: the models are {', '.join(TRAINERS)}"
            )
        reads = Reads()
        options: dict[str, Any] = {}
        if request.label_maturity_hours is not None and request.name != recommendations.NAME:
            options["maturity"] = dt.timedelta(hours=request.label_maturity_hours)
        run_id = _RUN_ID.sub("-", request.run_id)[:128] or uuid.uuid4().hex
        version = self._registered(request.name, run_id)  # a retry after it was registered
        if version is None:
            version = self._register(
                request.name, run_id, trainer(self.lake, reads, **options), reads
            )
        if CHAMPION not in self._aliases(request.name):
            self.registry.set_alias(request.name, CHAMPION, version.version)
        return version

    def _register(
        self, name: str, run_id: str, trained: TrainedModel, reads: Reads
    ) -> ModelVersion:
        folder = self._write(name, run_id, trained)
        return self.registry.create_version(
            name,
            source=self.artifacts.uri(folder),
            run_id=folder.rsplit("/", 1)[-1],
            metrics=trained.metrics,
            params=trained.params,
            signature=trained.signature,
            input_example=trained.input_example,
            training_data=reads.versions,
            code_version=self.code_version,
            tags={"onnx": ONNX_FILE, "native": trained.native_file, "card": CARD_FILE},
        )

    def _write(self, name: str, run_id: str, trained: TrainedModel) -> str:
        """The run's files, written once: a retry after a failure that left some of them (the
        data may have changed since, so they may not be this training's) writes its own in a
        folder of its own, `<run id>-<suffix>`. The folder."""
        folder = f"{name}/runs/{run_id}"
        try:
            self.artifacts.put(f"{folder}/{ONNX_FILE}", trained.onnx)
        except ArtifactExists:
            folder = f"{name}/runs/{run_id[:119]}-{uuid.uuid4().hex[:8]}"
            self.artifacts.put(f"{folder}/{ONNX_FILE}", trained.onnx)
        self.artifacts.put(f"{folder}/{trained.native_file}", trained.native)
        self.artifacts.put(f"{folder}/{CARD_FILE}", json.dumps(trained.card).encode())
        return folder

    def _registered(self, name: str, run_id: str) -> ModelVersion | None:
        """The version a run registered, if it did (a retry of a training that got that far)."""
        try:
            versions = self.registry.list_versions(name)
        except ModelNotFound:
            return None
        retried = re.compile(re.escape(run_id[:119]) + "-[0-9a-f]{8}")
        found = [v for v in versions if v.run_id == run_id or retried.fullmatch(v.run_id)]
        return found[0] if found else None

    def _aliases(self, name: str) -> dict[str, int]:
        try:
            return dict(self.registry.get_model(name).aliases)
        except ModelNotFound:
            return {}
