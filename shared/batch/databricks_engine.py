"""DatabricksEngine: gold SQL, transpiled to Spark SQL, a batch scoring or a model training, as
a one-time Jobs run (`runs/submit`) of `spark_runner.py`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    DatabricksError,
    DeadlineExceeded,
    InternalError,
    InvalidParameterValue,
    NotFound,
    ResourceDoesNotExist,
    TemporarilyUnavailable,
    TooManyRequests,
)
from databricks.sdk.service.compute import Library, PythonPyPiLibrary
from databricks.sdk.service.jobs import (
    Run,
    RunLifeCycleState,
    RunResultState,
    SparkPythonTask,
    SubmitTask,
)
from requests.exceptions import RequestException

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
from shared.config import DatabricksSettings

_TRANSIENT = (TooManyRequests, TemporarilyUnavailable, InternalError, DeadlineExceeded)
_WAITING = {
    RunLifeCycleState.QUEUED,
    RunLifeCycleState.PENDING,
    RunLifeCycleState.BLOCKED,
    RunLifeCycleState.WAITING_FOR_RETRY,
}
_ACTIVE = {RunLifeCycleState.RUNNING, RunLifeCycleState.TERMINATING}


class DatabricksEngine:
    """Submits each model, each batch scoring and each training as a Spark Python task running
    `spark_runner.py` on a cluster."""

    name = "databricks"

    def __init__(
        self,
        client: WorkspaceClient | Callable[[], WorkspaceClient],
        *,
        cluster_id: str,
        runner_path: str,
        run_timeout_s: int | None = None,
    ) -> None:
        self._connect = client if callable(client) else (lambda: client)
        self._workspace: WorkspaceClient | None = None
        self._lock = threading.Lock()
        self._cluster_id = cluster_id
        self._runner_path = runner_path
        self._run_timeout_s = run_timeout_s

    @classmethod
    def from_settings(
        cls, settings: DatabricksSettings, run_timeout_s: float | None = None
    ) -> DatabricksEngine:
        """An engine whose client is made on first use (making one asks the workspace for its
        metadata): a token when one is set, else the SDK's Entra ID chain."""

        def connect() -> WorkspaceClient:
            config = Config(
                host=settings.host,
                token=settings.token,
                http_timeout_seconds=30,
                retry_timeout_seconds=120,
            )
            return WorkspaceClient(config=config)

        timeout = int(run_timeout_s) if run_timeout_s else None
        return cls(
            connect,
            cluster_id=settings.cluster_id,
            runner_path=settings.runner_path,
            run_timeout_s=timeout,
        )

    @property
    def _client(self) -> WorkspaceClient:
        with self._lock:
            if self._workspace is None:
                self._workspace = self._connect()
            return self._workspace

    def submit(self, job: SqlJob) -> RunState:
        try:
            statements = spark_statements(job.sql, job.inputs, job.output, job.empty_inputs)
        except ModelSqlError as error:
            raise BatchError(f"{job.model}: {error}") from error
        task = SubmitTask(
            task_key="gold_sql",
            existing_cluster_id=self._cluster_id,
            spark_python_task=SparkPythonTask(
                python_file=self._runner_path, parameters=[encode_job(job.model, statements)]
            ),
        )
        return self._submit(f"gold {job.model}", task, job.idempotency_key(statements), job.model)

    def submit_scoring(self, job: ScoringJob) -> RunState:
        """A scoring task: the runner's argument names the payload file, and the cluster
        installs the task's libraries (pinned PyPI packages) before it runs."""
        task = SubmitTask(
            task_key="batch_scoring",
            existing_cluster_id=self._cluster_id,
            spark_python_task=SparkPythonTask(
                python_file=self._runner_path, parameters=[job.argument]
            ),
            libraries=[Library(pypi=PythonPyPiLibrary(package=p)) for p in job.libraries],
        )
        return self._submit(f"batch scoring {job.model}", task, job.idempotency_key(), job.model)

    def submit_training(self, job: TrainingJob) -> RunState:
        """A training task: the runner's argument names the payload file, and the cluster
        installs the task's libraries (pinned PyPI packages) before it runs."""
        task = SubmitTask(
            task_key="model_training",
            existing_cluster_id=self._cluster_id,
            spark_python_task=SparkPythonTask(
                python_file=self._runner_path, parameters=[job.argument]
            ),
            libraries=[Library(pypi=PythonPyPiLibrary(package=p)) for p in job.libraries],
        )
        return self._submit(f"training {job.model}", task, job.idempotency_key(), job.model)

    def _submit(self, name: str, task: SubmitTask, token: str, subject: str) -> RunState:
        # The same job submitted twice (an activity retried after a crash) is one run.
        with _translated(subject):
            waiter = self._client.jobs.submit(
                run_name=name,
                tasks=[task],
                idempotency_token=token[:64],
                # Databricks stops the run itself should the orchestration be terminated.
                timeout_seconds=self._run_timeout_s,
            )
        return RunState(self.name, str(waiter.run_id), RunStatus.PENDING)

    def state(self, run_id: str) -> RunState:
        with _translated(run_id):
            run = self._client.jobs.get_run(_number(run_id))
        return _run_state(self.name, run_id, run)

    def cancel(self, run_id: str) -> RunState:
        with _translated(run_id):
            self._client.jobs.cancel_run(_number(run_id))
        return self.state(run_id)


def _number(run_id: str) -> int:
    if not run_id.isdigit():
        raise UnknownRun(f"{run_id!r} is not a Databricks run id")
    return int(run_id)


def _run_state(engine: str, run_id: str, run: Run) -> RunState:
    state = run.state
    if state is None or state.life_cycle_state is None:
        return RunState(engine, run_id, RunStatus.PENDING)
    message = state.state_message or ""
    life = state.life_cycle_state
    if life in _WAITING:
        return RunState(engine, run_id, RunStatus.PENDING, message)
    if life in _ACTIVE:
        return RunState(engine, run_id, RunStatus.RUNNING, message)
    result = state.result_state
    if life is RunLifeCycleState.TERMINATED and result is RunResultState.SUCCESS:
        return RunState(engine, run_id, RunStatus.SUCCEEDED, message)
    if result in (RunResultState.CANCELED, RunResultState.EXCLUDED):
        return RunState(engine, run_id, RunStatus.CANCELLED, message or "cancelled")
    detail = f"{life.value}/{result.value if result else 'no result'}"
    return RunState(engine, run_id, RunStatus.FAILED, f"{detail}: {message}".rstrip(": "))


@contextmanager
def _translated(subject: str) -> Iterator[None]:
    """Maps SDK and network errors onto the port's errors, keeping the cause."""
    try:
        yield
    except (NotFound, ResourceDoesNotExist) as error:
        raise UnknownRun(f"Databricks has no run {subject}: {error}") from error
    except InvalidParameterValue as error:
        if "does not exist" in str(error):
            raise UnknownRun(f"Databricks has no run {subject}: {error}") from error
        raise BatchError(f"Databricks ({subject}): {error}") from error
    except (*_TRANSIENT, RequestException, TimeoutError) as error:  # the SDK gave up retrying
        raise BatchError(f"Databricks ({subject}): {error}", transient=True) from error
    except DatabricksError as error:
        raise BatchError(f"Databricks ({subject}): {error}") from error
