"""Batch inference as a Durable orchestration: a model version scores a table into
`gold/<model>_scores`, in the activity on DuckDB (`shared.models.batch_scoring`), or on
Databricks or Synapse through the batch engine (`shared.models.remote_scoring`), which the
orchestrator watches as the medallion's gold monitor does.

- Orchestrator `batch_score`, input `{"model", "version"?, "source"?}`. Its first activity
  scores the table here, or submits the scoring to the engine; the orchestrator retries it
  when the failure is transient (the output keeps one row per event and source, so a retry
  replaces what a failed attempt wrote; a remote submission is written once and submitted
  with the engine's idempotency token, so a retry is the same remote run).
- A remote run is polled with durable timers, from `PIPELINE_POLL_FIRST_S` doubling up to
  `PIPELINE_POLL_MAX_S`, and cancelled after `PIPELINE_RUN_TIMEOUT_S` or on a `cancel` event.
- Output: the run's figures (`BatchScoreResult.payload`: version, source and its Delta
  version, rows scored and skipped, rows over the threshold, the output table's Delta version;
  remotely also `engine` and `engine_run_id`, and the figures the run's commit records), or
  `{"model", "error", "permanent": true}` when the table cannot be scored (no champion, no
  such table or version, a table without the contract's columns) or the remote run failed,
  was cancelled or timed out: the message says which.
- The instance id is `score:<model>:<start time>`; `active_scoring` finds a scoring of the
  model in progress, so that a second request gets 409 with its id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.medallion import RETRY
from orchestrations.medallion_runs import active_instance
from orchestrations.run_monitor import Watch, about, message_of, watch_run
from shared.batch.engine import BatchError, RunStatus
from shared.bootstrap import current_platform
from shared.models.artifacts import ArtifactError
from shared.models.batch_scoring import BadSource, BatchScoreRequest
from shared.models.datasets import MissingData
from shared.models.registry import RegistryError
from shared.models.remote_scoring import (
    FinishScoring,
    ScoringSubmission,
    SparkScoring,
)
from shared.models.scoring_job import FeatureCodeError
from shared.pipeline.payloads import (
    ActivityFailure,
    PayloadError,
    RunRef,
    decode,
    encode,
)

BATCH_SCORE = "batch_score"
BATCH_SCORE_ACTIVITY = "model_batch_score"
SCORING_STATE = "model_batch_score_state"
CANCEL_SCORING = "model_batch_score_cancel"
FINISH_SCORING = "model_batch_score_finish"
SUBMITTED = "submitted"  # the first activity's answer for a remote run: {"submitted": ...}

bp = df.Blueprint()
log = logging.getLogger(__name__)

Orchestration = Generator[Any, Any, dict[str, Any]]


@bp.orchestration_trigger(context_name="context", orchestration=BATCH_SCORE)
def batch_score_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    request = {**(context.get_input() or {}), "run_id": context.instance_id}
    model = request.get("model")
    context.set_custom_status({"model": model, "step": "scoring"})
    result = yield context.call_activity_with_retry(BATCH_SCORE_ACTIVITY, RETRY, request)
    if isinstance(result, dict) and SUBMITTED in result:
        submission = decode(result[SUBMITTED], ScoringSubmission)
        result = yield from _watch(context, submission)
    context.set_custom_status({"model": model, "step": "done"})
    return dict(result)


def _watch(context: df.DurableOrchestrationContext, submission: ScoringSubmission) -> Orchestration:
    """Poll the remote run until it ends, times out or is cancelled; then its figures."""
    watch = Watch(
        SCORING_STATE,
        CANCEL_SCORING,
        submission.poll_first_s,
        submission.poll_max_s,
        submission.run_timeout_s,
        {"model": submission.model},
    )
    run = yield from watch_run(context, watch, submission.remote)
    if isinstance(run, str):
        return _failed(submission, run)
    if run.status is not RunStatus.SUCCEEDED:
        return _failed(submission, f"{about(run)} {run.status.value}: {run.message}".rstrip(": "))
    try:
        finished = yield context.call_activity_with_retry(
            FINISH_SCORING, RETRY, encode(FinishScoring(submission, run))
        )
    except Exception as error:
        return _failed(submission, f"{about(run)} succeeded; its figures: {message_of(error)}")
    return dict(finished)


def _failed(submission: ScoringSubmission, error: str) -> dict[str, Any]:
    return {"model": submission.model, "error": error, "permanent": True}


def _permanent(error: Exception) -> bool:
    """What a retry cannot fix: the request, the model's files, the engine refusing the run,
    an input without its payload's shape."""
    if isinstance(error, BatchError):
        return not error.transient
    return isinstance(
        error,
        BadSource | MissingData | RegistryError | ArtifactError | FeatureCodeError | PayloadError,
    )


@bp.activity_trigger(input_name="request", activity=BATCH_SCORE_ACTIVITY)
def model_batch_score(request: dict[str, Any]) -> dict[str, Any]:
    """Score the table here, or submit it to the batch engine (`{"submitted":
    ScoringSubmission}`); a failure no retry can fix comes back as `permanent`."""
    model = str(request.get("model", ""))
    version = request.get("version")
    scoring = BatchScoreRequest(
        model=model,
        version=int(version) if version is not None else None,
        source=str(request.get("source") or ""),
        run_id=str(request.get("run_id") or ""),
    )
    try:
        remote = _remote()
        if remote is not None:
            return {SUBMITTED: encode(_submitted(remote, scoring))}
        result = current_platform().batch_scoring.run(scoring)
    except Exception as error:
        if not _permanent(error):
            raise
        log.warning("batch scoring with %s not done: %s", model, error)
        return {"model": model, "error": str(error), "permanent": True}
    log.info(
        "batch scoring with %s v%d: %d rows of %s scored, %d skipped, into %s v%d",
        model,
        result.version,
        result.rows_scored,
        result.source,
        result.rows_skipped,
        result.output,
        result.output_version,
    )
    return result.payload()


def _submitted(remote: SparkScoring, request: BatchScoreRequest) -> ScoringSubmission:
    submission = remote.submit(request)
    log.info(
        "batch scoring with %s v%d of %s submitted to %s as run %s",
        submission.model,
        submission.version,
        submission.source,
        submission.remote.engine,
        submission.remote.run_id,
    )
    return submission


@bp.activity_trigger(input_name="request", activity=SCORING_STATE)
def model_batch_score_state(request: Any) -> Any:
    """`RunRef` -> `RunState`: the remote run's state (one poll; never waits)."""
    return _guarded(lambda remote: remote.state(decode(request, RunRef).run_id))


@bp.activity_trigger(input_name="request", activity=CANCEL_SCORING)
def model_batch_score_cancel(request: Any) -> Any:
    """`RunRef` -> `RunState`: the remote run's state after asking the engine to cancel it."""
    return _guarded(lambda remote: remote.cancel(decode(request, RunRef).run_id))


@bp.activity_trigger(input_name="request", activity=FINISH_SCORING)
def model_batch_score_finish(request: Any) -> Any:
    """`FinishScoring` -> the run's figures (`RemoteScoreResult.payload`, from the output's
    commit of the run), or `{"model", "error", "permanent": true}`."""
    try:
        result = _required_remote().finish(decode(request, FinishScoring))
    except Exception as error:
        if not _permanent(error):
            raise
        model = request.get("submission", {}).get("model") if isinstance(request, dict) else None
        return {"model": model, "error": str(error), "permanent": True}
    log.info(
        "batch scoring with %s v%d on %s: %s rows of %s scored, %s skipped, into %s v%d",
        result.model,
        result.version,
        result.engine,
        result.rows_scored,
        result.source,
        result.rows_skipped,
        result.output,
        result.output_version,
    )
    return result.payload()


def _guarded(call: Callable[[SparkScoring], object]) -> Any:
    """The call's answer, or an `ActivityFailure` for what a retry cannot fix (anything else
    raises, for the retry policy)."""
    try:
        return encode(call(_required_remote()))
    except Exception as error:
        if not _permanent(error):
            raise
        return encode(ActivityFailure.of(error))


def _remote() -> SparkScoring | None:
    """Scoring through the batch engine, or None when it runs here (DuckDB)."""
    return current_platform().remote_scoring


def _required_remote() -> SparkScoring:
    remote = _remote()
    if remote is None:  # a run submitted before the engine setting changed
        raise BatchError("the batch engine no longer runs scorings (BATCH_ENGINE changed)")
    return remote


async def active_scoring(client: df.DurableOrchestrationClient, model: str) -> str | None:
    """The instance id of a batch scoring with `model` in progress, if any."""
    return await active_instance(client, BATCH_SCORE, f"score:{model}:")


async def start_scoring(
    client: df.DurableOrchestrationClient, model: str, moment: str, **options: Any
) -> str:
    instance = f"score:{model}:{moment}"
    await client.start_new(BATCH_SCORE, instance, {"model": model, **options})
    return instance
