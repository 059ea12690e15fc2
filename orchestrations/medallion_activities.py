"""The medallion pipeline's activities: each one call into `shared.pipeline`, JSON in and out.

Inputs and answers are the payloads of `shared.pipeline.payloads`, decoded on the way in and
encoded on the way out. An error that a retry cannot fix (an unknown table, bad model SQL, a
refused remote run, a run already moved on by another, an input without its payload's shape)
comes back as an `ActivityFailure` (`{"error": ..., "permanent": true}`); anything else raises,
and the orchestrator's retry policy tries again with backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from shared.batch.engine import BatchError
from shared.batch.sql import ModelSqlError
from shared.bootstrap import current_platform
from shared.config import SettingsError
from shared.pipeline.payloads import (
    ActivityFailure,
    FinishGold,
    MaintenanceTarget,
    PayloadError,
    Recorded,
    RunRef,
    SilverRequest,
    SubmitGold,
    decode,
    encode,
)
from shared.pipeline.service import MedallionPipeline, UnknownTable
from shared.pipeline.state import StateConflict

PLAN = "medallion_plan"
BUILD_SILVER = "medallion_build_silver"
SUBMIT_GOLD = "medallion_submit_gold"
GOLD_STATE = "medallion_gold_state"
CANCEL_GOLD = "medallion_cancel_gold"
FINISH_GOLD = "medallion_finish_gold"
MAINTENANCE_PLAN = "medallion_maintenance_plan"
MAINTAIN_TABLE = "medallion_maintain_table"

bp = df.Blueprint()

Json = Any  # JSON values, as the Durable SDK passes them


def _permanent(error: Exception) -> bool:
    if isinstance(error, BatchError):
        return not error.transient
    return isinstance(
        error, UnknownTable | ModelSqlError | SettingsError | StateConflict | PayloadError
    )


def _guarded(call: Callable[[], object]) -> Json:
    try:
        return encode(call())
    except Exception as error:
        if _permanent(error):
            return encode(ActivityFailure.of(error))
        raise


@bp.activity_trigger(input_name="request", activity=PLAN)
def medallion_plan(request: Json) -> Json:
    """(ignored) -> `RunPlan`: the tables and models of a run, which silver tables each model
    reads, and how to poll."""
    return encode(_pipeline().run_plan())


@bp.activity_trigger(input_name="request", activity=BUILD_SILVER)
def medallion_build_silver(request: Json) -> Json:
    """`SilverRequest` -> `SilverOutcome` (rows in and out, checks, quarantined)."""

    def build() -> object:
        silver = decode(request, SilverRequest)
        return _pipeline().build_silver(silver.table, silver.run_id)

    return _guarded(build)


@bp.activity_trigger(input_name="request", activity=SUBMIT_GOLD)
def medallion_submit_gold(request: Json) -> Json:
    """`SubmitGold` -> `GoldSubmission`: its input versions and the engine's run (recorded in
    the run ledger under the submitting instance), or no run when the inputs have not changed
    since the last build."""

    def submit() -> object:
        gold = decode(request, SubmitGold)
        return _pipeline().submit_gold(gold.model, gold.run_key, gold.owner)

    return _guarded(submit)


@bp.activity_trigger(input_name="request", activity=GOLD_STATE)
def medallion_gold_state(request: Json) -> Json:
    """`RunRef` -> `RunState`: the run's state in the batch engine (one poll; never waits)."""
    return _guarded(lambda: _pipeline().gold_state(decode(request, RunRef).run_id))


@bp.activity_trigger(input_name="request", activity=CANCEL_GOLD)
def medallion_cancel_gold(request: Json) -> Json:
    """`RunRef` -> `RunState`: the run's state after asking the engine to cancel it."""
    return _guarded(lambda: _pipeline().cancel_gold(decode(request, RunRef).run_id))


@bp.activity_trigger(input_name="request", activity=FINISH_GOLD)
def medallion_finish_gold(request: Json) -> Json:
    """`FinishGold` -> `Recorded`: records what a successful build read."""

    def finish() -> object:
        done = decode(request, FinishGold)
        _pipeline().finish_gold(done.submission, done.final)
        return Recorded()

    return _guarded(finish)


@bp.activity_trigger(input_name="request", activity=MAINTENANCE_PLAN)
def medallion_maintenance_plan(request: Json) -> Json:
    """(ignored) -> a list of `MaintenanceTarget`: every table the pipeline owns, with its
    Z-order columns."""
    return encode(_pipeline().maintenance_plan())


@bp.activity_trigger(input_name="request", activity=MAINTAIN_TABLE)
def medallion_maintain_table(request: Json) -> Json:
    """`MaintenanceTarget` -> `MaintenanceResult`: compaction or Z-order, then vacuum, with
    file counts."""
    return _guarded(lambda: _pipeline().maintain(decode(request, MaintenanceTarget)))


def _pipeline() -> MedallionPipeline:
    return current_platform().pipeline
