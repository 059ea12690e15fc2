"""SynapseEngine: the gold SQL, transpiled to Spark SQL, as a run of a Synapse pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.synapse.artifacts import ArtifactsClient

from shared.batch.engine import BatchError, RunState, RunStatus, SqlJob, UnknownRun
from shared.batch.sql import ModelSqlError, encode_job, spark_statements
from shared.config import SynapseSettings

_STATUS = {
    "Queued": RunStatus.PENDING,
    "InProgress": RunStatus.RUNNING,
    "Canceling": RunStatus.RUNNING,
    "Succeeded": RunStatus.SUCCEEDED,
    "Failed": RunStatus.FAILED,
    "Cancelled": RunStatus.CANCELLED,
}


class SynapseEngine:
    """Starts the configured pipeline with parameters `model` and `job` (the encoded Spark SQL);
    the pipeline's Spark job runs `spark_runner.py` with `job` as its argument."""

    name = "synapse"

    def __init__(self, client: ArtifactsClient, *, pipeline: str) -> None:
        self._client = client
        self._pipeline = pipeline

    @classmethod
    def from_settings(
        cls, settings: SynapseSettings, credential: TokenCredential | None = None, **client: Any
    ) -> SynapseEngine:
        """A client on the workspace's dev endpoint, with Entra ID unless a credential is given."""
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        artifacts = ArtifactsClient(credential=credential, endpoint=settings.endpoint, **client)
        return cls(artifacts, pipeline=settings.pipeline)

    def submit(self, job: SqlJob) -> RunState:
        try:
            statements = spark_statements(job.sql, job.inputs, job.output, job.empty_inputs)
        except ModelSqlError as error:
            raise BatchError(f"{job.model}: {error}") from error
        parameters: dict[str, Any] = {"model": job.model, "job": encode_job(job.model, statements)}
        try:
            with _translated(f"pipeline {self._pipeline}"):
                response = self._client.pipeline.create_pipeline_run(
                    self._pipeline, parameters=parameters
                )
        except UnknownRun as error:
            raise BatchError(str(error)) from error  # the pipeline is missing: a deployment fault
        return RunState(self.name, str(response.run_id), RunStatus.PENDING)

    def state(self, run_id: str) -> RunState:
        with _translated(f"run {run_id}"):
            run = self._client.pipeline_run.get_pipeline_run(run_id)
        status = _STATUS.get(str(run.status))
        if status is None:
            return RunState(self.name, run_id, RunStatus.FAILED, f"unknown status {run.status!r}")
        return RunState(self.name, run_id, status, str(run.message or ""))

    def cancel(self, run_id: str) -> RunState:
        with _translated(f"run {run_id}"):
            self._client.pipeline_run.cancel_pipeline_run(run_id, is_recursive=True)
        return self.state(run_id)


@contextmanager
def _translated(subject: str) -> Iterator[None]:
    """Maps azure-core errors onto the port's errors, keeping the cause."""
    try:
        yield
    except ResourceNotFoundError as error:
        raise UnknownRun(f"Synapse has no {subject}: {error.message}") from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise BatchError(f"Synapse ({subject}): {error}", transient=True) from error
    except HttpResponseError as error:
        transient = error.status_code is not None and (
            error.status_code == 429 or error.status_code >= 500
        )
        raise BatchError(f"Synapse ({subject}): {error.message}", transient=transient) from error
