"""What a remote training runs on a Spark cluster's driver: `run_training(payload)`, which
`shared.batch.spark_runner` enters from the app's own code, shipped beside the payload
(`shared.models.training_code`), since the cluster does not have this package.

It is local training, `ModelTraining.train`, unchanged, over the same `Lake` and `Reads`; only
what it writes to differs:

- the run's files (`<name>/runs/<run id>/...`, as local training names them) go into the lake's
  model store under the run's folder, `<staging>/<attempt>/<name>/runs/<run id>/...`;
- the registry is a scratch one on the driver, so the version it records (its checks applied)
  is the result, not a registration.

The result document, `<staging>/result.json` beside the payload and written once, lists the
files and the version's record (metrics, params, signature, input example, the Delta versions
read, the code version, and the tags, which name the native file). The app then copies the
files to where local training puts them and registers the version
(`shared.models.remote_training`): only the app writes the registry and MLflow, and the cluster
needs no more than the lake. A model that cannot be trained yet (too little data) is a result
too, its `error` saying why, and the run succeeds. A run repeated on the same payload (a repair
of the run) answers the first result; one that crashed midway left its files in its own
attempt's folder, which nothing reads.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from embedded.documents.store import DocumentStore
from shared.config import Adapter, LakeSettings
from shared.lakehouse.access import lake_access
from shared.models.artifacts import ArtifactExists, ArtifactNotFound, ArtifactStore, open_artifacts
from shared.models.datasets import MissingData
from shared.models.registry import MODELS_CONTAINER, ModelRegistry
from shared.models.training import ModelTraining, TrainingRequest, UnknownModel
from shared.pipeline.lake import Lake

PAYLOAD_FORMAT = 1  # as `shared.batch.spark_runner.TRAINING_FORMAT`
ENTRY = f"{__name__}:run_training"  # what the runner calls, `module:function`
RESULT_FILE = "result.json"


class LakeRef(msgspec.Struct, frozen=True):
    """The lake's settings as the cluster needs them: no secret (Entra ID, or Azurite's public
    development key, reach it)."""

    uri: str
    adapter: str
    emulator_endpoint: str | None = None

    @classmethod
    def of(cls, settings: LakeSettings) -> LakeRef:
        return cls(settings.uri, settings.adapter.value, settings.emulator_endpoint)

    def settings(self) -> LakeSettings:
        return LakeSettings(self.uri, Adapter(self.adapter), self.emulator_endpoint)


class TrainingPayload(msgspec.Struct, frozen=True, kw_only=True):
    """The job's payload (`job.json`): what to train, where the lake is, the run's folder in the
    lake's model store, and the code the runner puts on its path (`code_uri`) and calls
    (`entry`)."""

    format: int
    model: str
    run_id: str
    label_maturity_hours: float | None = None
    lake: LakeRef
    staging: str
    code_uri: str
    entry: str


class TrainingOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The result document: the version training would register (`files` maps each run path
    to the file's staged path in the lake's model store), or why there is none (`error`)."""

    model: str
    run_id: str = ""  # the run's folder name, as local training makes it
    error: str = ""
    files: dict[str, str] = msgspec.field(default_factory=dict)
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    params: dict[str, str] = msgspec.field(default_factory=dict)
    signature: dict[str, Any] = msgspec.field(default_factory=dict)
    input_example: Any = None
    training_data: dict[str, int] = msgspec.field(default_factory=dict)
    code_version: str = ""
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class StagedArtifacts:
    """An `ArtifactStore` that keeps every file under `prefix` in `store`, and remembers where
    each went."""

    def __init__(self, store: ArtifactStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.written: dict[str, str] = {}

    def put(self, path: str, data: bytes) -> str:
        uri = self.store.put(f"{self.prefix}/{path}", data)
        self.written[path] = f"{self.prefix}/{path}"
        return uri

    def get(self, path: str) -> bytes:
        return self.store.get(f"{self.prefix}/{path}")

    def uri(self, path: str) -> str:
        return self.store.uri(f"{self.prefix}/{path}")


def run_training(job: Mapping[str, Any]) -> dict[str, Any]:
    """Train what the payload says, once per payload: the result document, as JSON values."""
    payload = msgspec.convert(job, TrainingPayload)
    if payload.format != PAYLOAD_FORMAT:
        raise ValueError(f"a training payload of format {payload.format}, not {PAYLOAD_FORMAT}")
    lake = payload.lake.settings()
    store = open_artifacts(lake)
    path = f"{payload.staging}/{RESULT_FILE}"
    outcome = stored_outcome(store, path)
    if outcome is None:
        outcome = _written_once(store, path, _trained(payload, lake, store))
    built: dict[str, Any] = msgspec.to_builtins(outcome)
    return built


def stored_outcome(store: ArtifactStore, path: str) -> TrainingOutcome | None:
    """The result document at `path`, or None when there is none yet."""
    try:
        return msgspec.json.decode(store.get(path), type=TrainingOutcome)
    except ArtifactNotFound:
        return None


def _trained(payload: TrainingPayload, lake: LakeSettings, store: ArtifactStore) -> TrainingOutcome:
    staged = StagedArtifacts(store, f"{payload.staging}/{uuid.uuid4().hex[:12]}")
    request = TrainingRequest(payload.model, payload.run_id, payload.label_maturity_hours)
    with tempfile.TemporaryDirectory(prefix="training-registry-") as scratch:
        documents = DocumentStore(Path(scratch) / "registry.sqlite3")
        registry = ModelRegistry(documents.container(MODELS_CONTAINER))
        training = ModelTraining(Lake(lake.uri, access=lake_access(lake)), registry, staged)
        try:
            version = training.train(request)
        except (UnknownModel, MissingData) as error:
            return TrainingOutcome(model=payload.model, error=str(error))
        finally:
            documents.connection().close()
    return TrainingOutcome(
        model=payload.model,
        run_id=version.run_id,
        files=dict(staged.written),
        metrics=dict(version.metrics),
        params=dict(version.params),
        signature=dict(version.signature),
        input_example=version.input_example,
        training_data=dict(version.training_data),
        code_version=version.code_version,
        tags=dict(version.tags),
    )


def _written_once(store: ArtifactStore, path: str, outcome: TrainingOutcome) -> TrainingOutcome:
    """This outcome, or the one an earlier attempt of the run wrote first."""
    try:
        store.put(path, json.dumps(msgspec.to_builtins(outcome), sort_keys=True).encode())
    except ArtifactExists:
        return msgspec.json.decode(store.get(path), type=TrainingOutcome)
    return outcome
