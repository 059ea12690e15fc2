"""Batch inference as a Durable orchestration: one activity scores a table with a model
version into `gold/<model>_scores` (`shared.models.batch_scoring`); the orchestrator retries it
when the failure is transient (the output keeps one row per event and source, so a retry
replaces what a failed attempt wrote).

- Orchestrator `batch_score`, input `{"model", "version"?, "source"?}`; output the run's
  figures (`BatchScoreResult.payload`: version, source and its Delta version, rows scored and
  skipped, rows over the threshold, the output table's Delta version), or `{"model", "error",
  "permanent": true}` when the table cannot be scored (no champion, no such table or version,
  a table without the contract's columns: the message says which).
- The instance id is `score:<model>:<start time>`; `active_scoring` finds a scoring of the
  model in progress, so that a second request gets 409 with its id.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from orchestrations.medallion import RETRY
from orchestrations.medallion_runs import ACTIVE
from shared.bootstrap import current_platform
from shared.models.batch_scoring import BadSource, BatchScoreRequest
from shared.models.datasets import MissingData
from shared.models.registry import RegistryError

BATCH_SCORE = "batch_score"
BATCH_SCORE_ACTIVITY = "model_batch_score"

bp = df.Blueprint()
log = logging.getLogger(__name__)


@bp.orchestration_trigger(context_name="context", orchestration=BATCH_SCORE)
def batch_score_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    request = {**(context.get_input() or {}), "run_id": context.instance_id}
    context.set_custom_status({"model": request.get("model"), "step": "scoring"})
    result = yield context.call_activity_with_retry(BATCH_SCORE_ACTIVITY, RETRY, request)
    context.set_custom_status({"model": request.get("model"), "step": "done"})
    return dict(result)


@bp.activity_trigger(input_name="request", activity=BATCH_SCORE_ACTIVITY)
def model_batch_score(request: dict[str, Any]) -> dict[str, Any]:
    """Score the table; a failure no retry can fix comes back as `permanent`."""
    model = str(request.get("model", ""))
    version = request.get("version")
    scoring = BatchScoreRequest(
        model=model,
        version=int(version) if version is not None else None,
        source=str(request.get("source") or ""),
        run_id=str(request.get("run_id") or ""),
    )
    try:
        result = current_platform().batch_scoring.run(scoring)
    except (BadSource, MissingData, RegistryError) as error:
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


async def active_scoring(client: df.DurableOrchestrationClient, model: str) -> str | None:
    """The instance id of a batch scoring with `model` in progress, if any."""
    for status in await client.get_status_by(runtime_status=ACTIVE):
        if status.name == BATCH_SCORE and str(status.instance_id).startswith(f"score:{model}:"):
            return str(status.instance_id)
    return None


async def start_scoring(
    client: df.DurableOrchestrationClient, model: str, moment: str, **options: Any
) -> str:
    instance = f"score:{model}:{moment}"
    await client.start_new(BATCH_SCORE, instance, {"model": model, **options})
    return instance
