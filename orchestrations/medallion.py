"""The medallion orchestrators: bronze to silver per table, then gold per model, then a summary.

Orchestrators only coordinate; all I/O is in `medallion_activities`. Remote gold runs use the
monitor pattern: submit in one activity, then poll with durable timers at a growing interval,
cancelling the run on timeout or on a `cancel` event. A `cancel` event to the run itself stops
it between steps: the steps in flight finish, none starts after it. Nothing sleeps inside an
activity. What goes to and comes back from activities and sub-orchestrations is a payload of
`shared.pipeline.payloads`, encoded on sending and decoded on receipt.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.medallion_activities import (
    BUILD_SILVER,
    CANCEL_GOLD,
    FINISH_GOLD,
    GOLD_STATE,
    MAINTAIN_TABLE,
    MAINTENANCE_PLAN,
    PLAN,
    SUBMIT_GOLD,
)
from shared.batch.engine import RunStatus
from shared.pipeline.payloads import (
    ActivityFailure,
    FinishGold,
    GoldRequest,
    GoldSubmission,
    MaintenanceResult,
    MaintenanceTarget,
    RunPlan,
    RunRef,
    RunState,
    SilverOutcome,
    SilverRequest,
    SubmitGold,
    decode,
    decode_outcome,
    encode,
)

MEDALLION = "medallion"
SILVER_TABLE = "medallion_silver_table"
GOLD_MODEL = "medallion_gold_model"
MAINTENANCE = "medallion_maintenance"
CANCEL_EVENT = "cancel"
CANCEL_POLLS = 5  # polls after a cancel, for the remote run to say it stopped

bp = df.Blueprint()

Orchestration = Generator[Any, Any, dict[str, Any]]


class BackoffRetry(df.RetryOptions):
    """RetryOptions with the extension's backoff fields, which the Python SDK does not model."""

    def __init__(self, first_ms: int, attempts: int, backoff: float, max_interval_ms: int) -> None:
        super().__init__(first_ms, attempts)
        self._backoff = {
            "backoffCoefficient": backoff,
            "maxRetryIntervalInMilliseconds": max_interval_ms,
        }

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), **self._backoff}


RETRY = BackoffRetry(first_ms=1000, attempts=4, backoff=2.0, max_interval_ms=30_000)


def child_id(parent: str, kind: str, name: str) -> str:
    """The instance id of a run's sub-orchestration, so callers can find (and cancel) it."""
    return f"{parent}:{kind}:{name}"


def _error(error: Exception) -> str:
    return str(error).strip() or type(error).__name__


class _Cancel:
    """The run's `cancel` event: waited on beside every step until it arrives.

    The SDK matches an event only to a task it is waiting on, so the task is part of every
    wait; once it has arrived, the run starts nothing more and waits for what is in flight."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self.task = context.wait_for_external_event(CANCEL_EVENT)
        self.requested = False

    def beside(self, tasks: list[Any]) -> list[Any]:
        return tasks if self.requested else [*tasks, self.task]


def _fan_in(
    context: df.DurableOrchestrationContext,
    status: dict[str, Any],
    tasks: dict[str, Any],
    cancel: _Cancel,
) -> Generator[Any, Any, dict[str, Any]]:
    """Wait for every task, updating the custom status as each one finishes (or the run is
    cancelled: the tasks in flight still finish)."""
    results: dict[str, Any] = {}
    pending = dict(tasks)
    while pending:
        done = yield context.task_any(cancel.beside(list(pending.values())))
        if done is cancel.task:
            cancel.requested = True
            status["cancelled"] = True
            context.set_custom_status(status)
            continue
        name = next(key for key, task in pending.items() if task is done)
        del pending[name]
        results[name] = done.result
        status["tables"][name] = (done.result or {}).get("status", "done")
        context.set_custom_status(status)
    return results


def _not_started(names: list[str], status: dict[str, Any]) -> dict[str, Any]:
    for name in names:
        status["tables"][name] = "cancelled"
    return {
        name: {"status": "cancelled", "message": "the run was cancelled before this started"}
        for name in names
    }


@bp.orchestration_trigger(context_name="context", orchestration=MEDALLION)
def medallion_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    """Input: `{"trigger"}` (optional). Output: the run's summary (see `_summary`)."""
    started = context.current_utc_datetime
    cancel = _Cancel(context)
    planning = context.call_activity_with_retry(PLAN, RETRY, context.get_input())
    first = yield context.task_any(cancel.beside([planning]))
    if first is cancel.task:
        context.set_custom_status({"stage": "cancelled", "engine": None, "tables": {}})
        return _cancelled_before_planning(started, context.current_utc_datetime)
    plan = decode(planning.result, RunPlan)
    tables = {f"silver/{t}": "pending" for t in plan.silver}
    tables |= {f"gold/{m}": "pending" for m in plan.gold}
    status: dict[str, Any] = {"stage": "silver", "engine": plan.engine, "tables": tables}
    context.set_custom_status(status)

    silver_tasks = {
        f"silver/{table}": context.call_sub_orchestrator(
            SILVER_TABLE,
            encode(SilverRequest(table, context.instance_id)),
            child_id(context.instance_id, "silver", table),
        )
        for table in plan.silver
    }
    silver = yield from _fan_in(context, status, silver_tasks, cancel)
    failed = {name.split("/", 1)[1] for name, r in silver.items() if r.get("status") == "failed"}

    status["stage"] = "gold"
    context.set_custom_status(status)
    gold_tasks = {}
    gold: dict[str, Any] = {}
    if cancel.requested:
        gold |= _not_started([f"gold/{m}" for m in plan.gold], status)
    for model in [] if cancel.requested else plan.gold:
        blocked = sorted(set(plan.reads[model]) & failed)
        if blocked:
            gold[f"gold/{model}"] = {
                "model": model,
                "status": "skipped",
                "message": f"silver failed: {', '.join(blocked)}",
            }
            status["tables"][f"gold/{model}"] = "skipped"
            continue
        request = GoldRequest(
            model, context.instance_id, plan.poll_first_s, plan.poll_max_s, plan.run_timeout_s
        )
        gold_tasks[f"gold/{model}"] = context.call_sub_orchestrator(
            GOLD_MODEL, encode(request), child_id(context.instance_id, "gold", model)
        )
    gold |= yield from _fan_in(context, status, gold_tasks, cancel)

    summary = _summary(plan.engine, silver, gold, started, context.current_utc_datetime)
    if cancel.requested:
        summary["status"] = "cancelled"
    status["stage"] = "cancelled" if cancel.requested else "done"
    context.set_custom_status(status)
    return summary


def _cancelled_before_planning(started: Any, finished: Any) -> dict[str, Any]:
    return {**_summary(None, {}, {}, started, finished), "status": "cancelled"}


def _summary(
    engine: str | None,
    silver: dict[str, Any],
    gold: dict[str, Any],
    started: Any,
    finished: Any,
) -> dict[str, Any]:
    checks = [c for r in silver.values() for c in r.get("checks", [])]
    failures = [
        name
        for name, r in {**silver, **gold}.items()
        if r.get("status") in ("failed", "timed_out", "cancelled", "skipped")
    ]
    return {
        "pipeline": MEDALLION,
        "engine": engine,
        "status": "failed" if failures else "succeeded",
        "failures": failures,
        "totals": {
            "rows_in": sum(r.get("rows_in", 0) for r in silver.values()),
            "rows_out": sum(r.get("rows_out", 0) for r in silver.values()),
            "duplicates": sum(r.get("duplicates", 0) for r in silver.values()),
            "quarantined": sum(r.get("quarantined", 0) for r in silver.values()),
            "late_rows": sum(r.get("late_rows", 0) for r in silver.values()),
            "checks_run": len(checks),
            "checks_failed": sum(1 for c in checks if not c["passed"]),
            "gold_rebuilt": sum(1 for r in gold.values() if r.get("status") == "succeeded"),
            "gold_rows_out": sum(r.get("rows_out") or 0 for r in gold.values()),
        },
        "silver": silver,
        "gold": gold,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": (finished - started).total_seconds(),
    }


@bp.orchestration_trigger(context_name="context", orchestration=SILVER_TABLE)
def medallion_silver_table(context: df.DurableOrchestrationContext) -> Orchestration:
    """One silver table (`SilverRequest`), its failures caught so that the other tables'
    results survive. Output: the `SilverOutcome`, or `{"table", "status": "failed", "error"}`."""
    request = decode(context.get_input(), SilverRequest)
    try:
        answer = yield context.call_activity_with_retry(BUILD_SILVER, RETRY, encode(request))
    except Exception as error:
        return {"table": request.table, "status": "failed", "error": _error(error)}
    outcome = decode_outcome(answer, SilverOutcome)
    if isinstance(outcome, ActivityFailure):
        return {"table": request.table, "status": "failed", "error": outcome.error}
    return dict(encode(outcome))


@bp.orchestration_trigger(context_name="context", orchestration=GOLD_MODEL)
def medallion_gold_model(context: df.DurableOrchestrationContext) -> Orchestration:
    """Submit one model (`GoldRequest`), then watch its run until it ends, times out or is
    cancelled. Output: the model's status, with the run's id, engine, message and rows."""
    request = decode(context.get_input(), GoldRequest)
    model = request.model
    # The ledger records the run under this instance and its parent, for the reaper.
    submit = SubmitGold(model, request.run_key, context.instance_id, context.parent_instance_id)
    try:
        answer = yield context.call_activity_with_retry(SUBMIT_GOLD, RETRY, encode(submit))
    except Exception as error:
        return {"model": model, "status": "failed", "message": _error(error)}
    submission = decode_outcome(answer, GoldSubmission)
    if isinstance(submission, ActivityFailure):
        return {"model": model, "status": "failed", "message": submission.error}
    run = submission.run
    if run is None:
        return {"model": model, "status": "up_to_date", "inputs": dict(submission.inputs)}

    deadline = context.current_utc_datetime + timedelta(seconds=request.run_timeout_s)
    interval = float(request.poll_first_s)
    cancel = context.wait_for_external_event(CANCEL_EVENT)
    polls = 0
    while not run.status.terminal:
        context.set_custom_status(
            {"model": model, "run_id": run.run_id, "status": run.status.value, "polls": polls}
        )
        now = context.current_utc_datetime
        if now >= deadline:
            return (yield from _cancel(context, request, run, "timed_out", polls))
        timer = context.create_timer(min(now + timedelta(seconds=interval), deadline))
        winner = yield context.task_any([timer, cancel])
        if winner == cancel:
            timer.cancel()
            return (yield from _cancel(context, request, run, "cancelled", polls))
        interval = min(interval * 2, float(request.poll_max_s))
        polls += 1
        try:
            answer = yield context.call_activity_with_retry(
                GOLD_STATE, RETRY, encode(RunRef(run.run_id))
            )
        except Exception as error:
            return {
                "model": model,
                "status": "failed",
                "run_id": run.run_id,
                "message": _error(error),
            }
        state = decode_outcome(answer, RunState)
        if isinstance(state, ActivityFailure):
            return {"model": model, "status": "failed", "message": state.error, "polls": polls}
        run = state
    if run.status is RunStatus.SUCCEEDED:
        yield context.call_activity_with_retry(
            FINISH_GOLD, RETRY, encode(FinishGold(submission, run))
        )
    return {
        "model": model,
        "status": run.status.value,
        "engine": run.engine,
        "run_id": run.run_id,
        "message": run.message,
        "rows_out": run.rows_out,
        "polls": polls,
    }


def _cancel(
    context: df.DurableOrchestrationContext,
    request: GoldRequest,
    run: RunState,
    why: str,
    polls: int,
) -> Generator[Any, Any, dict[str, Any]]:
    """Ask the engine to cancel, then watch a few more polls for the run to stop."""
    remote = "unknown"
    ref = encode(RunRef(run.run_id))
    try:
        after = decode_outcome(
            (yield context.call_activity_with_retry(CANCEL_GOLD, RETRY, ref)), RunState
        )
        for _ in range(CANCEL_POLLS):
            if isinstance(after, ActivityFailure) or after.status.terminal:
                break
            wake = context.current_utc_datetime + timedelta(seconds=float(request.poll_first_s))
            yield context.create_timer(wake)
            answer = yield context.call_activity_with_retry(GOLD_STATE, RETRY, ref)
            after = decode_outcome(answer, RunState)
        remote = after.error if isinstance(after, ActivityFailure) else after.status.value
    except Exception as error:
        remote = f"cancel failed: {_error(error)}"
    return {
        "model": request.model,
        "status": why,
        "run_id": run.run_id,
        "engine": run.engine,
        "message": f"remote run {remote} after cancel",
        "polls": polls,
    }


@bp.orchestration_trigger(context_name="context", orchestration=MAINTENANCE)
def medallion_maintenance(context: df.DurableOrchestrationContext) -> Orchestration:
    """Compaction, Z-order and vacuum, one table after another (they compete for the same disk).
    Output: each table's `MaintenanceResult`, the status and the tables that failed."""
    answer = yield context.call_activity_with_retry(MAINTENANCE_PLAN, RETRY, None)
    targets = decode(answer, list[MaintenanceTarget])
    results: list[MaintenanceResult] = []
    for target in targets:
        name = f"{target.layer}/{target.table}"
        try:
            answer = yield context.call_activity_with_retry(MAINTAIN_TABLE, RETRY, encode(target))
            done = decode_outcome(answer, MaintenanceResult)
        except Exception as error:
            done = ActivityFailure(_error(error))
        if isinstance(done, ActivityFailure):
            done = MaintenanceResult(name, "failed", error=done.error)
        results.append(done)
        context.set_custom_status({"done": len(results), "of": len(targets)})
    failed = [r.table for r in results if r.status == "failed"]
    return {
        "tables": encode(results),
        "status": "failed" if failed else "succeeded",
        "failures": failed,
    }
