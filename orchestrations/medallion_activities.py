"""The medallion pipeline's activities: each one call into `shared.pipeline`, JSON in and out.

An error that a retry cannot fix (an unknown table, bad model SQL, a refused remote run, a run
already moved on by another) comes back as `{"error": ..., "permanent": true}`; anything else
raises, and the orchestrator's retry policy tries again with backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from shared.batch.engine import BatchError
from shared.batch.sql import ModelSqlError
from shared.config import SettingsError
from shared.pipeline.run_ledger import RunOwner
from shared.pipeline.service import UnknownTable, medallion
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


def _permanent(error: Exception) -> bool:
    if isinstance(error, BatchError):
        return not error.transient
    return isinstance(error, UnknownTable | ModelSqlError | SettingsError | StateConflict)


def _guarded(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return call()
    except Exception as error:
        if _permanent(error):
            return {"error": f"{type(error).__name__}: {error}", "permanent": True}
        raise


@bp.activity_trigger(input_name="request", activity=PLAN)
def medallion_plan(request: dict[str, Any] | None) -> dict[str, Any]:
    """The tables and models of a run, which silver tables each model reads, and how to poll."""
    return medallion().run_plan()


@bp.activity_trigger(input_name="request", activity=BUILD_SILVER)
def medallion_build_silver(request: dict[str, Any]) -> dict[str, Any]:
    """`{"table", "run_id"}` -> the silver outcome (rows in and out, checks, quarantined)."""
    return _guarded(lambda: medallion().build_silver(request["table"], request["run_id"]))


@bp.activity_trigger(input_name="request", activity=SUBMIT_GOLD)
def medallion_submit_gold(request: dict[str, Any]) -> dict[str, Any]:
    """`{"model", "run_key", "instance_id", "parent_instance_id"}` -> the submission: its input
    versions and the engine's run (recorded in the run ledger under the submitting instance), or
    no run when the inputs have not changed since the last build."""
    owner = None
    if request.get("instance_id"):  # absent in inputs scheduled before the ledger existed
        owner = RunOwner(request["instance_id"], request.get("parent_instance_id"))
    return _guarded(lambda: medallion().submit_gold(request["model"], request["run_key"], owner))


@bp.activity_trigger(input_name="request", activity=GOLD_STATE)
def medallion_gold_state(request: dict[str, Any]) -> dict[str, Any]:
    """`{"run_id"}` -> the run's state in the batch engine (one poll; never waits)."""
    return _guarded(lambda: medallion().gold_state(request["run_id"]))


@bp.activity_trigger(input_name="request", activity=CANCEL_GOLD)
def medallion_cancel_gold(request: dict[str, Any]) -> dict[str, Any]:
    """`{"run_id"}` -> the run's state after asking the engine to cancel it."""
    return _guarded(lambda: medallion().cancel_gold(request["run_id"]))


@bp.activity_trigger(input_name="request", activity=FINISH_GOLD)
def medallion_finish_gold(request: dict[str, Any]) -> dict[str, Any]:
    """`{"submission", "final"}` -> records what a successful build read."""

    def finish() -> dict[str, Any]:
        medallion().finish_gold(request["submission"], request["final"])
        return {"recorded": True}

    return _guarded(finish)


@bp.activity_trigger(input_name="request", activity=MAINTENANCE_PLAN)
def medallion_maintenance_plan(request: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every table the pipeline owns, with its Z-order columns."""
    return medallion().maintenance_plan()


@bp.activity_trigger(input_name="request", activity=MAINTAIN_TABLE)
def medallion_maintain_table(request: dict[str, Any]) -> dict[str, Any]:
    """`{"layer", "table", "zorder"}` -> compaction or Z-order, then vacuum, with file counts."""
    return _guarded(lambda: medallion().maintain(request))
