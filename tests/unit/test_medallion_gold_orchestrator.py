"""The gold-model orchestrator, replayed by the SDK over recorded histories: submit, poll with
timers, finish; permanent and transient failures; timeout and cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrations.medallion import CANCEL_EVENT, GOLD_MODEL, medallion_gold_model
from orchestrations.medallion_activities import CANCEL_GOLD, FINISH_GOLD, GOLD_STATE, SUBMIT_GOLD
from shared.pipeline.payloads import PayloadError, SubmitGold, decode
from tests.medallion_history import GOLD_REQUEST, permanent, run_state, submission
from tests.orchestrator_replay import T0, History, names, scheduled

pytestmark = [
    pytest.mark.unit,
    # The SDK warns once when it decodes a result the orchestrator gave no type for.
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type"),
]

ORCHESTRATOR = medallion_gold_model.build().get_user_function()
PARENT = "run-1"
SUBMIT = {"model": "spend", "run_key": "run-1", "instance_id": "i1", "parent_instance_id": PARENT}
RUN = {"run_id": "42"}


def _replay(history: History) -> dict[str, Any]:
    return history.replay(ORCHESTRATOR, parent=PARENT)


def _submitted(request: dict[str, Any] = GOLD_REQUEST) -> History:
    """The model was submitted and its remote run is pending."""
    return History(GOLD_MODEL, request).activity(SUBMIT_GOLD, submission(run_state("pending")))


def _activities(state: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(name, given) for name, given in scheduled(state) if name != "timer"]


def test_it_submits_polls_and_records_a_successful_build() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(GOLD_STATE, run_state("succeeded", rows_out=7))
    history.activity(FINISH_GOLD, {"recorded": True})

    state = _replay(history)

    assert state["isDone"], state
    assert _activities(state) == [
        (SUBMIT_GOLD, SUBMIT),
        (GOLD_STATE, RUN),
        (
            FINISH_GOLD,
            {
                "submission": submission(run_state("pending")),
                "final": run_state("succeeded", rows_out=7),
            },
        ),
    ]
    assert decode(scheduled(state)[0][1], SubmitGold).owner is not None
    assert state["output"] == {
        "model": "spend",
        "status": "succeeded",
        "engine": "databricks",
        "run_id": "42",
        "message": "",
        "rows_out": 7,
        "polls": 1,
    }


def test_the_first_poll_waits_poll_first_s() -> None:
    state = _replay(_submitted())
    assert not state["isDone"]
    assert names(state) == [SUBMIT_GOLD, "timer"]
    assert state["customStatus"] == {
        "model": "spend",
        "run_id": "42",
        "status": "pending",
        "polls": 0,
    }


def test_unchanged_inputs_need_no_run() -> None:
    history = History(GOLD_MODEL, GOLD_REQUEST).activity(SUBMIT_GOLD, submission(None))
    state = _replay(history)
    assert state["isDone"] and names(state) == [SUBMIT_GOLD]
    assert state["output"] == {
        "model": "spend",
        "status": "up_to_date",
        "inputs": {"silver.payments": 2},
    }


def test_a_permanent_failure_is_not_retried() -> None:
    history = History(GOLD_MODEL, GOLD_REQUEST)
    history.activity(SUBMIT_GOLD, permanent("ModelSqlError: bad SQL"))
    state = _replay(history)
    assert state["isDone"] and names(state) == [SUBMIT_GOLD]
    assert state["output"] == {
        "model": "spend",
        "status": "failed",
        "message": "ModelSqlError: bad SQL",
    }


def test_a_permanent_failure_while_polling_ends_the_model() -> None:
    history = _submitted().timer(T0 + timedelta(seconds=5))
    history.activity(GOLD_STATE, permanent("UnknownRun: no run 42"))
    state = _replay(history)
    assert state["isDone"] and names(state) == [SUBMIT_GOLD, "timer", GOLD_STATE]
    assert state["output"] == {
        "model": "spend",
        "status": "failed",
        "message": "UnknownRun: no run 42",
        "polls": 1,
    }


def test_a_transient_failure_is_retried_until_the_attempts_run_out() -> None:
    once = History(GOLD_MODEL, GOLD_REQUEST).activity_failed(SUBMIT_GOLD, "timeout", 1)
    assert not _replay(once)["isDone"]  # waiting for the next attempt
    retried = History(GOLD_MODEL, GOLD_REQUEST).activity_failed(SUBMIT_GOLD, "timeout", 1)
    retried.activity(SUBMIT_GOLD, submission(None))
    assert _replay(retried)["output"]["status"] == "up_to_date"

    exhausted = History(GOLD_MODEL, GOLD_REQUEST).activity_failed(SUBMIT_GOLD, "timeout", 4)
    state = _replay(exhausted)
    assert state["isDone"]
    assert state["output"] == {"model": "spend", "status": "failed", "message": "timeout"}


def test_a_run_past_its_timeout_is_cancelled() -> None:
    history = _submitted({**GOLD_REQUEST, "run_timeout_s": 8.0})
    history.timer(T0 + timedelta(seconds=5)).activity(GOLD_STATE, run_state("running"))
    history.timer(T0 + timedelta(seconds=8)).activity(GOLD_STATE, run_state("running"))
    history.activity(CANCEL_GOLD, run_state("cancelled"))

    state = _replay(history)

    assert state["isDone"], state
    assert _activities(state) == [
        (SUBMIT_GOLD, SUBMIT),
        (GOLD_STATE, RUN),
        (GOLD_STATE, RUN),
        (CANCEL_GOLD, RUN),
    ]
    assert state["output"] == {
        "model": "spend",
        "status": "timed_out",
        "run_id": "42",
        "engine": "databricks",
        "message": "remote run cancelled after cancel",
        "polls": 2,
    }


def test_a_cancel_event_cancels_the_remote_run_and_watches_it_stop() -> None:
    history = _submitted()
    history.create_timer(T0 + timedelta(seconds=5))
    history.turn().raised(CANCEL_EVENT, {"reason": "test"})
    history.activity(CANCEL_GOLD, run_state("running"))
    history.timer(T0 + timedelta(seconds=5)).activity(GOLD_STATE, run_state("cancelled"))

    state = _replay(history)

    assert state["isDone"], state
    assert _activities(state) == [(SUBMIT_GOLD, SUBMIT), (CANCEL_GOLD, RUN), (GOLD_STATE, RUN)]
    assert state["output"]["status"] == "cancelled"
    assert state["output"]["message"] == "remote run cancelled after cancel"


def test_a_cancel_the_engine_refuses_is_reported() -> None:
    history = _submitted()
    history.create_timer(T0 + timedelta(seconds=5))
    history.turn().raised(CANCEL_EVENT, {"reason": "test"})
    history.activity(CANCEL_GOLD, permanent("BatchError: refused"))

    state = _replay(history)

    assert state["isDone"]
    assert state["output"]["message"] == "remote run BatchError: refused after cancel"


def test_a_recorded_answer_without_its_payload_shape_fails_the_orchestration() -> None:
    renamed = {**run_state("pending"), "id": "42"}
    del renamed["run_id"]
    history = History(GOLD_MODEL, GOLD_REQUEST).activity(SUBMIT_GOLD, submission(renamed))
    with pytest.raises(Exception, match=r"RunState|run_id") as raised:
        _replay(history)
    assert isinstance(raised.value.__cause__, PayloadError)
