"""SynapseEngine: the gold SQL, transpiled to Spark SQL, a batch scoring or a model training,
as a run of a Synapse pipeline.

`createRun` takes no idempotency token, so each run carries the job's idempotency key as the
pipeline parameter `idempotency_key`, and a submit first looks for a recent run of the pipeline
with that key (`queryPipelineRuns`) and reuses it: an activity retried after a crash does not
start the pipeline twice.

A batch scoring runs through the same pipeline: its `job` parameter is the scoring argument
(`score:<payload URI>`), which the runner tells from an encoded SQL job. Its libraries
(onnxruntime and msgspec, pinned as in requirements.txt) must be installed on the Spark pool
(the pool's requirements file); a pipeline run cannot install them. A training runs the same
way (`train:<payload URI>`); its libraries (`shared.models.training_code.training_libraries`)
must be on the pool too, and the pool's Python must be 3.11 or later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
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
from azure.synapse.artifacts.models import (
    PipelineRun,
    RunFilterParameters,
    RunQueryFilter,
    RunQueryFilterOperand,
    RunQueryFilterOperator,
    RunQueryOrder,
    RunQueryOrderBy,
    RunQueryOrderByField,
)

from shared.batch.engine import (
    BatchError,
    RunState,
    RunStatus,
    ScoringJob,
    SqlJob,
    TrainingJob,
    UnknownRun,
)
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
IDEMPOTENCY_PARAMETER = "idempotency_key"
# How far back a submit looks for a run with its key: far longer than an activity's retries.
LOOKBACK = dt.timedelta(days=1)
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_PAGES = 100  # a bound on the lookup, should a workspace keep answering continuation tokens


class SynapseEngine:
    """Starts the configured pipeline with parameters `model`, `job` (the encoded Spark SQL, or
    the scoring or training argument) and `idempotency_key`; the pipeline's Spark job runs
    `spark_runner.py` with `job` as its argument. The pipeline must declare the three as string
    parameters."""

    name = "synapse"

    def __init__(
        self,
        client: ArtifactsClient,
        *,
        pipeline: str,
        lookback: dt.timedelta = LOOKBACK,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._client = client
        self._pipeline = pipeline
        self._lookback = lookback
        self._clock = clock

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
        return self._start(
            job.model, encode_job(job.model, statements), job.idempotency_key(statements)
        )

    def submit_scoring(self, job: ScoringJob) -> RunState:
        """The pipeline with the scoring argument as its `job`; `job.libraries` must already
        be on the Spark pool."""
        return self._start(job.model, job.argument, job.idempotency_key())

    def submit_training(self, job: TrainingJob) -> RunState:
        """The pipeline with the training argument as its `job`; `job.libraries` must already
        be on the Spark pool."""
        return self._start(job.model, job.argument, job.idempotency_key())

    def _start(self, model: str, argument: str, key: str) -> RunState:
        parameters: dict[str, Any] = {
            "model": model,
            "job": argument,
            IDEMPOTENCY_PARAMETER: key,
        }
        try:
            # A failed lookup raises: creating a run blind could start a second one.
            existing = self.find_run(key)
            if existing is not None:
                return self._state_of(existing)
            with _translated(f"pipeline {self._pipeline}"):
                response = self._client.pipeline.create_pipeline_run(
                    self._pipeline, parameters=parameters
                )
        except UnknownRun as error:
            raise BatchError(str(error)) from error  # the pipeline is missing: a deployment fault
        return RunState(self.name, str(response.run_id), RunStatus.PENDING)

    def find_run(self, key: str) -> PipelineRun | None:
        """The newest run of the pipeline updated within the lookback that carries this key."""
        now = self._clock()
        query = RunFilterParameters(
            last_updated_after=now - self._lookback,
            last_updated_before=now + CLOCK_SKEW,
            filters=[
                RunQueryFilter(
                    operand=RunQueryFilterOperand.PIPELINE_NAME,
                    operator=RunQueryFilterOperator.EQUALS,
                    values=[self._pipeline],
                )
            ],
            order_by=[
                RunQueryOrderBy(order_by=RunQueryOrderByField.RUN_START, order=RunQueryOrder.DESC)
            ],
        )
        seen_tokens: set[str] = set()
        for _ in range(MAX_PAGES):
            with _translated(f"runs of pipeline {self._pipeline}"):
                page = self._client.pipeline_run.query_pipeline_runs_by_workspace(query)
            for run in page.value or []:
                parameters: dict[str, str] = run.parameters or {}
                if parameters.get(IDEMPOTENCY_PARAMETER) == key:
                    return run
            token = page.continuation_token
            if not token or token in seen_tokens:
                return None
            seen_tokens.add(token)
            query.continuation_token = token
        raise BatchError(
            f"Synapse: runs of pipeline {self._pipeline} span more than {MAX_PAGES} pages; "
            "cannot tell whether this job already runs"
        )

    def state(self, run_id: str) -> RunState:
        with _translated(f"run {run_id}"):
            run = self._client.pipeline_run.get_pipeline_run(run_id)
        return self._state_of(run, run_id)

    def _state_of(self, run: PipelineRun, run_id: str | None = None) -> RunState:
        run_id = run_id or str(run.run_id)
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
