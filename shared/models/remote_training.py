"""Training through the batch engine (Databricks, Synapse): the same training as
`shared.models.training`, run by `shared.batch.spark_runner` on the cluster's driver
(`shared.models.training_run`), watched by the `train_challenger` orchestration, and registered
here.

- `submit` checks the model's name, writes the run's folder once in the lake's model store
  (`<name>/training/<run>/`: the app's code as `code.zip`, and `job.json`, the payload: job
  parameters are limited in size, and a retried submit must describe the same job) and submits
  it with the engine's idempotency token: a retried submit is the same remote run.
- `state` and `cancel` are the engine's, for the orchestration's polls.
- `finish`, once the run has succeeded, reads the run's `result.json`, copies its files from
  where the cluster staged them to `<name>/runs/<run id>/` in the app's artifact store (where
  local training writes them: MLflow's run, when MLflow is the registry), and registers the
  version as local training does (the model's first becomes its champion). A retried finish
  registers nothing twice: the version of the run, once registered, is the answer.

The app keeps every file but a run's in the lake's model store (`open_artifacts`), with MLflow
too, which is where the cluster, opening that store from the lake's settings, finds the payload
and writes its files and result.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass

import msgspec

from shared.batch.engine import BatchEngine, RunState, TrainingEngine, TrainingJob
from shared.config import BatchSettings, LakeSettings
from shared.models.artifacts import ArtifactExists
from shared.models.datasets import MissingData
from shared.models.deployment import CHAMPION
from shared.models.registry import ModelNotFound, ModelVersion
from shared.models.remote_scoring import Polling
from shared.models.service import Models
from shared.models.training import TRAINERS, TrainingRequest, UnknownModel
from shared.models.training_code import training_code, training_libraries
from shared.models.training_run import (
    ENTRY,
    PAYLOAD_FORMAT,
    RESULT_FILE,
    LakeRef,
    TrainingOutcome,
    TrainingPayload,
    stored_outcome,
)
from shared.pipeline.payloads import PayloadError

PAYLOAD_FILE = "job.json"
CODE_FILE = "code.zip"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # as training names a run's folder and files


class CannotTrain(LookupError):
    """The run could not train the model (too little data yet): the message says why."""


class TrainingSubmission(msgspec.Struct, frozen=True):
    """A training the engine runs: the model, the run id (the orchestration's, which names the
    version's run), the run's folder in the lake's model store, its payload, the engine's run,
    and how to watch it."""

    model: str
    run_id: str
    staging: str
    payload_uri: str
    remote: RunState
    poll_first_s: float
    poll_max_s: float
    run_timeout_s: float


class FinishTraining(msgspec.Struct, frozen=True):
    """A successful remote run, for `finish`: the submission and the run's final state."""

    submission: TrainingSubmission
    final: RunState


@dataclass(frozen=True)
class SparkTraining:
    """Trainings on a Spark engine's driver, registered in the app's registry."""

    models: Models
    lake: LakeSettings
    engine: TrainingEngine
    polling: Polling = Polling()

    def submit(self, request: TrainingRequest) -> TrainingSubmission:
        """Check the model's name, write the run's code and payload (once) and submit it."""
        if request.name not in TRAINERS:
            raise UnknownModel(
                f"no model named {request.name[:64]!r}: the models are {', '.join(TRAINERS)}"
            )
        run_id = request.run_id or uuid.uuid4().hex
        staging = f"{request.name}/training/{run_folder(run_id)}"
        artifacts = self.models.artifacts
        self._written_once(f"{staging}/{CODE_FILE}", training_code())
        payload = TrainingPayload(
            format=PAYLOAD_FORMAT,
            model=request.name,
            run_id=run_id,
            label_maturity_hours=request.label_maturity_hours,
            lake=LakeRef.of(self.lake),
            staging=staging,
            code_uri=artifacts.uri(f"{staging}/{CODE_FILE}"),
            entry=ENTRY,
        )
        path = f"{staging}/{PAYLOAD_FILE}"
        self._written_once(path, json.dumps(msgspec.to_builtins(payload), sort_keys=True).encode())
        uri = artifacts.uri(path)
        job = TrainingJob(request.name, uri, run_key=run_id, libraries=training_libraries())
        return TrainingSubmission(
            model=request.name,
            run_id=run_id,
            staging=staging,
            payload_uri=uri,
            remote=self.engine.submit_training(job),
            poll_first_s=self.polling.first_s,
            poll_max_s=self.polling.max_s,
            run_timeout_s=self.polling.timeout_s,
        )

    def state(self, run_id: str) -> RunState:
        return self.engine.state(run_id)

    def cancel(self, run_id: str) -> RunState:
        return self.engine.cancel(run_id)

    def finish(self, done: FinishTraining) -> ModelVersion:
        """Register the version a succeeded run trained (MissingData when it wrote no result,
        CannotTrain when the result says why it could not train)."""
        submission = done.submission
        outcome = self.outcome(done)
        if outcome.error:
            raise CannotTrain(outcome.error)
        folder = f"{submission.model}/runs/{outcome.run_id}"
        artifacts, registry = self.models.artifacts, self.models.registry
        for path, staged in _checked_files(outcome, folder, submission.staging).items():
            self._published(path, artifacts.get(staged))
        version = self._registered(submission.model, outcome.run_id)
        if version is None:
            version = registry.create_version(
                submission.model,
                source=artifacts.uri(folder),
                run_id=outcome.run_id,
                metrics=outcome.metrics,
                params=outcome.params,
                signature=outcome.signature,
                input_example=outcome.input_example,
                training_data=outcome.training_data,
                code_version=outcome.code_version,
                tags=outcome.tags,
            )
        if CHAMPION not in registry.get_model(submission.model).aliases:
            registry.set_alias(submission.model, CHAMPION, version.version)
        return version

    def outcome(self, done: FinishTraining) -> TrainingOutcome:
        """The run's result document (MissingData when it has none)."""
        submission = done.submission
        path = f"{submission.staging}/{RESULT_FILE}"
        try:
            outcome = stored_outcome(self.models.artifacts, path)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise PayloadError(f"{path}: {error}") from error
        if outcome is None:
            raise MissingData(
                f"the {done.final.engine} run {done.final.run_id} succeeded, but wrote no {path}"
            )
        if outcome.model != submission.model:
            raise PayloadError(f"{path} is a result of {outcome.model}, not {submission.model}")
        return outcome

    def _registered(self, name: str, run_id: str) -> ModelVersion | None:
        """The version already registered from this run (by a finish that was retried)."""
        try:
            versions = self.models.registry.list_versions(name)
        except ModelNotFound:
            return None
        return next((v for v in versions if v.run_id == run_id), None)

    def _published(self, path: str, data: bytes) -> None:
        """The file at `path`, written once: an earlier finish of the run wrote the same."""
        artifacts = self.models.artifacts
        try:
            artifacts.put(path, data)
        except ArtifactExists:
            if artifacts.get(path) != data:
                raise ArtifactExists(f"{path} exists with other content") from None

    def _written_once(self, path: str, data: bytes) -> None:
        """Write the file, unless an earlier attempt of the run did: its stays."""
        try:
            self.models.artifacts.put(path, data)
        except ArtifactExists:
            pass


def spark_training(
    models: Models, engine: BatchEngine, lake: LakeSettings, batch: BatchSettings
) -> SparkTraining | None:
    """Training through the batch engine when it trains (Databricks, Synapse); None when models
    train in process (DuckDB)."""
    if not isinstance(engine, TrainingEngine):
        return None
    polling = Polling(batch.poll_first_s, batch.poll_max_s, batch.run_timeout_s)
    return SparkTraining(models, lake, engine, polling)


def _checked_files(outcome: TrainingOutcome, folder: str, staging: str) -> dict[str, str]:
    """The result's files (run path -> staged path), each in its folder, by plain segments."""
    if not outcome.files or not _plain(outcome.run_id):
        raise PayloadError(f"the result of {outcome.model} names no run or no file")
    for path, staged in outcome.files.items():
        inside = path.startswith(f"{folder}/") and staged.startswith(f"{staging}/")
        if not inside or not all(_plain(part) for part in (*path.split("/"), *staged.split("/"))):
            raise PayloadError(f"the result of {outcome.model} names {path} at {staged}")
    return outcome.files


def _plain(segment: str) -> bool:
    return bool(_SEGMENT.fullmatch(segment)) and segment not in (".", "..")


def run_folder(run_id: str) -> str:
    """A run's folder name: safe in any store and Hadoop path (no colons), one per run id."""
    digest = hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{_UNSAFE.sub('-', run_id)[:100]}-{digest}"
