"""The monitor pattern for one remote run on the batch engine, as the medallion's gold runs and
batch scorings are watched: durable timers from the first interval, doubling up to the longest,
one poll activity per timer, and a cancel of the run after the timeout or on a `cancel` event.

Orchestrators call `watch_run` with `yield from`; it does no I/O of its own (the poll and cancel
activities do), and its time is the orchestration's.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrations.medallion import CANCEL_EVENT, RETRY
from shared.batch.engine import RunState
from shared.pipeline.payloads import ActivityFailure, RunRef, decode_outcome, encode


@dataclass(frozen=True)
class Watch:
    """How to watch a run: its poll and cancel activities (`RunRef` -> `RunState`, or an
    `ActivityFailure`), the polling intervals and timeout in seconds, and what the custom status
    shows beside the run's state."""

    state_activity: str
    cancel_activity: str
    poll_first_s: float
    poll_max_s: float
    timeout_s: float
    status: dict[str, Any] = field(default_factory=dict)


def watch_run(
    context: df.DurableOrchestrationContext, watch: Watch, run: RunState
) -> Generator[Any, Any, RunState | str]:
    """Poll the run until it ends: its final state; or, when it did not end, why (timed out or
    cancelled, after asking the engine to cancel it; or its state could not be read)."""
    deadline = context.current_utc_datetime + timedelta(seconds=watch.timeout_s)
    interval = watch.poll_first_s
    cancel = context.wait_for_external_event(CANCEL_EVENT)
    polls = 0
    while not run.status.terminal:
        context.set_custom_status(
            {
                **watch.status,
                "step": "remote",
                "engine": run.engine,
                "run_id": run.run_id,
                "status": run.status.value,
                "polls": polls,
            }
        )
        now = context.current_utc_datetime
        if now >= deadline:
            why = f"timed out after {watch.timeout_s:g} s"
            return (yield from _stop(context, watch, run, why))
        timer = context.create_timer(min(now + timedelta(seconds=interval), deadline))
        winner = yield context.task_any([timer, cancel])
        if winner == cancel:
            timer.cancel()
            return (yield from _stop(context, watch, run, "cancelled"))
        interval = min(interval * 2, watch.poll_max_s)
        polls += 1
        try:
            answer = yield context.call_activity_with_retry(
                watch.state_activity, RETRY, encode(RunRef(run.run_id))
            )
        except Exception as error:
            return f"{about(run)}: its state is unknown: {message_of(error)}"
        state = decode_outcome(answer, RunState)
        if isinstance(state, ActivityFailure):
            return f"{about(run)}: {state.error}"
        run = state
    return run


def _stop(
    context: df.DurableOrchestrationContext, watch: Watch, run: RunState, why: str
) -> Generator[Any, Any, str]:
    """Ask the engine to cancel the run; why it ended, and what the engine said."""
    try:
        answer = yield context.call_activity_with_retry(
            watch.cancel_activity, RETRY, encode(RunRef(run.run_id))
        )
        after = decode_outcome(answer, RunState)
        remote = after.error if isinstance(after, ActivityFailure) else after.status.value
    except Exception as error:
        remote = f"cancel failed: {message_of(error)}"
    return f"{why}: {about(run)} asked to cancel ({remote})"


def about(run: RunState) -> str:
    """The run, in a message: `the databricks run 1001`."""
    return f"the {run.engine} run {run.run_id}"


def message_of(error: Exception) -> str:
    return str(error).strip() or type(error).__name__
