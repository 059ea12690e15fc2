"""Training a challenger as a Durable sub-orchestration: in the `model_train` activity with the
local engine (DuckDB), or on the driver of a Databricks or Synapse cluster through the batch
engine (`shared.models.remote_training`), watched as the medallion's gold runs are.

- Sub-orchestrator `train_challenger`, input `{"name", "run_id"?, "label_maturity_hours"?}`
  (`run_id` names the version's run; by default the instance id). Its first activity submits
  the training to the engine, or answers that it runs here; then:
  - here: the `model_train` activity (`orchestrations/models.py`) trains and registers;
  - remotely: the run is polled with durable timers, from `PIPELINE_POLL_FIRST_S` doubling up
    to `PIPELINE_POLL_MAX_S`, and cancelled after `PIPELINE_RUN_TIMEOUT_S` or on a `cancel`
    event; once it succeeded, a finish activity copies its files into the artifact store and
    registers the version (the registry is written only here, never by the cluster).
  Each activity is retried when its failure is transient; a remote submission is written once
  and submitted with the engine's idempotency token, so a retry is the same remote run.
- Output: `model_train`'s answer, `{"name", "version", "metrics", "aliases"}` (`aliases`: those
  pointing at the new version, `champion` for a model's first), or `{"name", "error",
  "permanent": true}` when the model cannot be trained (no such model, too little data: the
  message says what to post or run first) or the remote run failed, was cancelled or timed
  out: the message says which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.medallion import RETRY
from orchestrations.models import TRAIN_ACTIVITY
from orchestrations.run_monitor import Watch, about, message_of, watch_run
from shared.batch.engine import BatchError, RunStatus
from shared.bootstrap import current_platform
from shared.models.artifacts import ArtifactError
from shared.models.datasets import MissingData
from shared.models.registry import RegistryError
from shared.models.remote_training import (
    CannotTrain,
    FinishTraining,
    SparkTraining,
    TrainingSubmission,
)
from shared.models.training import TrainingRequest, UnknownModel
from shared.models.training_code import TrainingCodeError
from shared.pipeline.payloads import (
    ActivityFailure,
    PayloadError,
    RunRef,
    decode,
    encode,
)

TRAIN_CHALLENGER = "train_challenger"
SUBMIT_TRAINING = "model_train_submit"
TRAINING_STATE = "model_train_state"
CANCEL_TRAINING = "model_train_cancel"
FINISH_TRAINING = "model_train_finish"
SUBMITTED = "submitted"  # the submit activity's answer for a remote run: {"submitted": ...}
LOCAL = "local"  # its answer when the model trains here: {"local": true}

bp = df.Blueprint()
log = logging.getLogger(__name__)

Orchestration = Generator[Any, Any, dict[str, Any]]


@bp.orchestration_trigger(context_name="context", orchestration=TRAIN_CHALLENGER)
def train_challenger_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    given = dict(context.get_input() or {})
    request = {**given, "run_id": given.get("run_id") or context.instance_id}
    name = request.get("name")
    context.set_custom_status({"model": name, "step": "training"})
    answer = yield context.call_activity_with_retry(SUBMIT_TRAINING, RETRY, request)
    if isinstance(answer, dict) and answer.get(LOCAL):
        answer = yield context.call_activity_with_retry(TRAIN_ACTIVITY, RETRY, request)
    elif isinstance(answer, dict) and SUBMITTED in answer:
        answer = yield from _remote(context, decode(answer[SUBMITTED], TrainingSubmission))
    context.set_custom_status({"model": name, "step": "done"})
    return dict(answer)


def _remote(
    context: df.DurableOrchestrationContext, submission: TrainingSubmission
) -> Orchestration:
    """Watch the remote run to its end; then register what it trained, or say why not."""
    watch = Watch(
        TRAINING_STATE,
        CANCEL_TRAINING,
        submission.poll_first_s,
        submission.poll_max_s,
        submission.run_timeout_s,
        {"model": submission.model},
    )
    run = yield from watch_run(context, watch, submission.remote)
    if isinstance(run, str):
        return _failed(submission.model, run)
    if run.status is not RunStatus.SUCCEEDED:
        return _failed(
            submission.model, f"{about(run)} {run.status.value}: {run.message}".rstrip(": ")
        )
    context.set_custom_status({"model": submission.model, "step": "registering"})
    try:
        finished = yield context.call_activity_with_retry(
            FINISH_TRAINING, RETRY, encode(FinishTraining(submission, run))
        )
    except Exception as error:
        return _failed(
            submission.model, f"{about(run)} succeeded; its version: {message_of(error)}"
        )
    return dict(finished)


def _failed(name: str, error: str) -> dict[str, Any]:
    return {"name": name, "error": error, "permanent": True}


def _permanent(error: Exception) -> bool:
    """What a retry cannot fix: the request, the run's result or files, the registry refusing
    the version, the engine refusing the run, an input without its payload's shape."""
    if isinstance(error, BatchError):
        return not error.transient
    return isinstance(
        error,
        UnknownModel
        | MissingData
        | CannotTrain
        | RegistryError
        | ArtifactError
        | TrainingCodeError
        | PayloadError,
    )


@bp.activity_trigger(input_name="request", activity=SUBMIT_TRAINING)
def model_train_submit(request: dict[str, Any]) -> dict[str, Any]:
    """Submit the training to the batch engine (`{"submitted": TrainingSubmission}`), or answer
    `{"local": true}` when the model trains here; a failure no retry can fix comes back as
    `permanent`."""
    name = str(request.get("name", ""))
    try:
        remote = _remote_training()
        if remote is None:
            return {LOCAL: True}
        hours = request.get("label_maturity_hours")
        submission = remote.submit(
            TrainingRequest(
                name=name,
                run_id=str(request.get("run_id") or ""),
                label_maturity_hours=float(hours) if hours is not None else None,
            )
        )
    except Exception as error:
        if not _permanent(error):
            raise
        log.warning("model %s not submitted for training: %s", name, error)
        return _failed(name, str(error))
    log.info(
        "training of %s (run %s) submitted to %s as run %s",
        name,
        submission.run_id,
        submission.remote.engine,
        submission.remote.run_id,
    )
    return {SUBMITTED: encode(submission)}


@bp.activity_trigger(input_name="request", activity=TRAINING_STATE)
def model_train_state(request: Any) -> Any:
    """`RunRef` -> `RunState`: the remote run's state (one poll; never waits)."""
    return _guarded(lambda remote: remote.state(decode(request, RunRef).run_id))


@bp.activity_trigger(input_name="request", activity=CANCEL_TRAINING)
def model_train_cancel(request: Any) -> Any:
    """`RunRef` -> `RunState`: the remote run's state after asking the engine to cancel it."""
    return _guarded(lambda remote: remote.cancel(decode(request, RunRef).run_id))


@bp.activity_trigger(input_name="request", activity=FINISH_TRAINING)
def model_train_finish(request: Any) -> dict[str, Any]:
    """`FinishTraining` -> `{"name", "version", "metrics", "aliases"}`, as `model_train`
    answers, once the version is registered; or `{"name", "error", "permanent": true}`."""
    submission = request.get("submission", {}) if isinstance(request, dict) else {}
    name = str(submission.get("model", "")) if isinstance(submission, dict) else ""
    try:
        models = current_platform().models
        version = _required_remote().finish(decode(request, FinishTraining))
        aliases = models.registry.get_model(version.name).aliases
    except Exception as error:
        if not _permanent(error):
            raise
        log.warning("model %s not registered from its remote training: %s", name, error)
        return _failed(name, str(error))
    log.info("model %s v%d registered from its remote training", version.name, version.version)
    return {
        "name": version.name,
        "version": version.version,
        "metrics": version.metrics,
        "aliases": sorted(alias for alias, v in aliases.items() if v == version.version),
    }


def _guarded(call: Callable[[SparkTraining], object]) -> Any:
    """The call's answer, or an `ActivityFailure` for what a retry cannot fix (anything else
    raises, for the retry policy)."""
    try:
        return encode(call(_required_remote()))
    except Exception as error:
        if not _permanent(error):
            raise
        return encode(ActivityFailure.of(error))


def _remote_training() -> SparkTraining | None:
    """Training through the batch engine, or None when models train here (DuckDB)."""
    return current_platform().remote_training


def _required_remote() -> SparkTraining:
    remote = _remote_training()
    if remote is None:  # a run submitted before the engine setting changed
        raise BatchError("the batch engine no longer trains models (BATCH_ENGINE changed)")
    return remote
