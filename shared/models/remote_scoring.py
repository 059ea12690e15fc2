"""Batch inference through the batch engine (Databricks, Synapse): the same scoring as
`shared.models.batch_scoring`, run by `shared.batch.spark_runner` on the cluster, watched by the
`batch_score` orchestration.

- `submit` checks the request as the local path does (the model, the source and its columns,
  the version), writes the job's payload once beside the model files
  (`<model>/batch/<run>/job.json`: job parameters are limited in size, and a retried submit
  must describe the same job) and submits it with the engine's idempotency token: a retried
  submit is the same remote run.
- `state` and `cancel` are the engine's, for the orchestration's polls.
- `finish`, once the run has succeeded, reads the output table's history: the runner's commit
  carries the run's figures in its `userMetadata` (rows scored and skipped, alerts), and its
  version is the output's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pyarrow as pa

from shared.batch.engine import BatchEngine, RunState, ScoringEngine, ScoringJob
from shared.config import BatchSettings
from shared.features.base import EPOCH
from shared.models.artifacts import ArtifactExists
from shared.models.batch_scoring import (
    BadSource,
    BatchScoreRequest,
    BatchScoring,
    ScoringTarget,
    output_table,
)
from shared.models.datasets import MissingData
from shared.models.scoring_job import scoring_payload, spark_libraries
from shared.models.training import CARD_FILE, ONNX_FILE

PAYLOAD_FILE = "job.json"
HISTORY_COMMITS = 100  # how far back `finish` looks for the run's commit
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class ScoringSubmission(msgspec.Struct, frozen=True):
    """A scoring the engine runs: what it scores (`run_id` is the orchestration's, as the
    output's rows have it), its payload, the engine's run, and how to watch it."""

    model: str
    version: int
    source: str
    source_version: int
    output: str
    run_id: str
    payload_uri: str
    remote: RunState
    poll_first_s: float
    poll_max_s: float
    run_timeout_s: float


class FinishScoring(msgspec.Struct, frozen=True):
    """A successful remote run, for `finish`: the submission and the run's final state."""

    submission: ScoringSubmission
    final: RunState


@dataclass(frozen=True)
class RemoteScoreResult:
    """What a remote scoring did: as `BatchScoreResult`, with the engine's run; the figures
    are None when the output's history does not have the run's commit."""

    model: str
    version: int
    source: str
    source_version: int
    output: str
    output_version: int
    rows_scored: int | None
    rows_skipped: int | None
    alerts: int | None
    engine: str
    engine_run_id: str

    def payload(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Polling:
    """How the orchestration watches a remote run (the pipeline's `PIPELINE_POLL_*`)."""

    first_s: float = 5.0
    max_s: float = 60.0
    timeout_s: float = 3600.0


@dataclass(frozen=True)
class SparkScoring:
    """Batch scorings on a Spark engine, over the lake and models of the local path."""

    local: BatchScoring
    engine: ScoringEngine
    polling: Polling = Polling()
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    def submit(self, request: BatchScoreRequest) -> ScoringSubmission:
        """Check the request, write its payload (once) and submit it."""
        target = self.local.target(request)
        _check_types(target)
        version = self.local.version_of(request)
        models = self.local.models
        found = models.registry.get_version(request.model, version)
        folder = f"{request.model}/runs/{found.run_id}"
        card = json.loads(models.artifacts.get(f"{folder}/{CARD_FILE}"))
        run_id = request.run_id or uuid.uuid4().hex
        path = f"{request.model}/batch/{_folder(run_id)}/{PAYLOAD_FILE}"
        output = output_table(request.model)
        payload = self._written_once(
            path,
            scoring_payload(
                model=request.model,
                version=version,
                threshold=float(card.get("threshold", 0.5)),
                features=[str(name) for name in card.get("features", [])],
                onnx_uri=models.artifacts.uri(f"{folder}/{ONNX_FILE}"),
                feature_set=target.scorable.features,
                columns=target.scorable.columns,
                source=target.source,
                source_uri=target.uri,
                source_version=target.delta.version(),
                output_uri=self.local.lake.uri("gold", output),
                run_id=run_id,
                scored_at_us=(self.clock() - EPOCH) // dt.timedelta(microseconds=1),
            ),
        )
        uri = models.artifacts.uri(path)
        job = ScoringJob(request.model, uri, run_key=run_id, libraries=spark_libraries())
        return ScoringSubmission(
            model=request.model,
            version=int(payload["version"]),
            source=str(payload["source"]),
            source_version=int(payload["source_version"]),
            output=f"gold.{output}",
            run_id=run_id,
            payload_uri=uri,
            remote=self.engine.submit_scoring(job),
            poll_first_s=self.polling.first_s,
            poll_max_s=self.polling.max_s,
            run_timeout_s=self.polling.timeout_s,
        )

    def state(self, run_id: str) -> RunState:
        return self.engine.state(run_id)

    def cancel(self, run_id: str) -> RunState:
        return self.engine.cancel(run_id)

    def finish(self, done: FinishScoring) -> RemoteScoreResult:
        """The figures of a succeeded run, from the output's commit of it (MissingData when
        the output does not exist)."""
        submission = done.submission
        table = self.local.lake.open("gold", output_table(submission.model))
        if table is None:
            raise MissingData(
                f"the {done.final.engine} run {done.final.run_id} succeeded, "
                f"but {submission.output} does not exist"
            )
        figures: dict[str, Any] = {}
        output_version = table.version()
        for commit in table.history(HISTORY_COMMITS):
            found = _figures(commit.get("userMetadata"))
            if found.get("run_id") == submission.run_id:
                figures, output_version = found, int(commit["version"])
                break
        return RemoteScoreResult(
            model=submission.model,
            version=submission.version,
            source=submission.source,
            source_version=submission.source_version,
            output=submission.output,
            output_version=output_version,
            rows_scored=_count(figures, "rows_scored"),
            rows_skipped=_count(figures, "rows_skipped"),
            alerts=_count(figures, "alerts"),
            engine=done.final.engine,
            engine_run_id=done.final.run_id,
        )

    def _written_once(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The run's payload: this one, or the one an earlier attempt of the run wrote."""
        artifacts = self.local.models.artifacts
        try:
            artifacts.put(path, json.dumps(payload, sort_keys=True).encode())
        except ArtifactExists:
            stored: dict[str, Any] = json.loads(artifacts.get(path))
            return stored
        return payload


def spark_scoring(
    local: BatchScoring, engine: BatchEngine, batch: BatchSettings
) -> SparkScoring | None:
    """Batch scoring through the batch engine when it runs scorings (Databricks, Synapse);
    None when scorings run in process (DuckDB)."""
    if not isinstance(engine, ScoringEngine):
        return None
    polling = Polling(batch.poll_first_s, batch.poll_max_s, batch.run_timeout_s)
    return SparkScoring(local, engine, polling)


def _folder(run_id: str) -> str:
    """A run's folder name: safe in any store and Hadoop path (no colons), one per run id."""
    digest = hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{_UNSAFE.sub('-', run_id)[:100]}-{digest}"


def _check_types(target: ScoringTarget) -> None:
    """The runner carries scalar columns exactly; a nested one would reach the features as
    pandas gives it, not as the DuckDB path does."""
    schema = pa.schema(target.delta.schema().to_arrow())
    for name in target.scorable.columns:
        kind = schema.field(name).type
        if pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
            raise BadSource(f"{target.source}.{name} is {kind}: Spark scores scalar columns")


def _figures(metadata: object) -> dict[str, Any]:
    if not isinstance(metadata, str):
        return {}
    try:
        found = json.loads(metadata)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _count(figures: dict[str, Any], name: str) -> int | None:
    value = figures.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
