"""The BatchEngine port: submit a SQL model (or, on the Spark engines, a batch scoring or a
model training), ask for its state, cancel it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class BatchError(RuntimeError):
    """A batch engine refused or lost a run; `transient` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class UnknownRun(BatchError):
    """The engine has no run with this id."""


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class SqlJob:
    """One gold model: a DuckDB-dialect SELECT over `layer.table` names, written to `output`.

    `inputs` maps each `layer.table` name the SQL reads to its Delta table URI; the engine
    replaces the whole `output` table with the query's result.
    """

    model: str
    sql: str
    inputs: Mapping[str, str]
    output: str
    storage_options: Mapping[str, str] = field(default_factory=dict)
    # Inputs that do not exist yet, read as no rows with these columns (name -> DuckDB type).
    empty_inputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    run_key: str = ""  # one logical run: a resubmission with the same key is the same remote run

    def idempotency_key(self, statements: list[str]) -> str:
        """The same logical run (model, run key, statements) always gets the same key."""
        digest = hashlib.sha256("\n".join([self.model, self.run_key, *statements]).encode())
        return digest.hexdigest()


# The Spark runner's argument for a scoring job: this prefix, then the URI of the job's payload
# (a base64 SQL job never holds a colon).
SCORING_PREFIX = "score:"


@dataclass(frozen=True)
class ScoringJob:
    """One batch scoring on Spark. What to score, with which model and features, is in the
    payload file at `payload_uri` (written once by the app; job parameters are limited in
    size), which `spark_runner.py` reads; `libraries` are the pip requirements it needs on the
    cluster."""

    model: str
    payload_uri: str
    run_key: str = ""  # one logical run: a resubmission with the same key is the same remote run
    libraries: tuple[str, ...] = ()

    @property
    def argument(self) -> str:
        """The runner's single argument."""
        return f"{SCORING_PREFIX}{self.payload_uri}"

    def idempotency_key(self) -> str:
        """The same logical run (model, run key, payload) always gets the same key."""
        digest = hashlib.sha256("\n".join([self.model, self.run_key, self.payload_uri]).encode())
        return digest.hexdigest()


# The Spark runner's argument for a training job: this prefix, then the URI of its payload.
TRAINING_PREFIX = "train:"


@dataclass(frozen=True)
class TrainingJob:
    """One model training on a Spark cluster's driver. What to train, and the app's code that
    trains it, are in the payload file at `payload_uri` (written once by the app), which
    `spark_runner.py` reads; `libraries` are the pip requirements that code needs there."""

    model: str
    payload_uri: str
    run_key: str = ""  # one logical run: a resubmission with the same key is the same remote run
    libraries: tuple[str, ...] = ()

    @property
    def argument(self) -> str:
        """The runner's single argument."""
        return f"{TRAINING_PREFIX}{self.payload_uri}"

    def idempotency_key(self) -> str:
        """The same logical run (model, run key, payload) always gets the same key, never a
        scoring's."""
        parts = ["training", self.model, self.run_key, self.payload_uri]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class RunState:
    """Where a run is. `rows_out` is known only to engines that report it."""

    engine: str
    run_id: str
    status: RunStatus
    message: str = ""
    rows_out: int | None = None


class BatchEngine(Protocol):
    """Runs SQL models. Local engines finish inside `submit`; remote ones are polled."""

    name: str

    def submit(self, job: SqlJob) -> RunState:
        """Start the job; the answer may already be terminal."""
        ...

    def state(self, run_id: str) -> RunState:
        """The run's current state; raises UnknownRun."""
        ...

    def cancel(self, run_id: str) -> RunState:
        """Ask the engine to stop the run; answers the state after asking."""
        ...


@runtime_checkable
class ScoringEngine(Protocol):
    """An engine that also runs batch scorings (the Spark engines); DuckDB does not: batch
    scoring with it runs in process (`shared.models.batch_scoring`)."""

    name: str

    def submit_scoring(self, job: ScoringJob) -> RunState:
        """Start the scoring; a second submit of the same logical run is the same run."""
        ...

    def state(self, run_id: str) -> RunState: ...

    def cancel(self, run_id: str) -> RunState: ...


@runtime_checkable
class TrainingEngine(Protocol):
    """An engine that also trains models on a cluster's driver (the Spark engines); with DuckDB
    a model trains in process (`shared.models.training`)."""

    name: str

    def submit_training(self, job: TrainingJob) -> RunState:
        """Start the training; a second submit of the same logical run is the same run."""
        ...

    def state(self, run_id: str) -> RunState: ...

    def cancel(self, run_id: str) -> RunState: ...
