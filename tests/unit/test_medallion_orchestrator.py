"""The medallion orchestrator, replayed by the SDK over recorded histories: the plan drives the
silver and gold sub-orchestrations; a `cancel` stops the run between steps."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrations.medallion import CANCEL_EVENT, GOLD_MODEL, MEDALLION, SILVER_TABLE
from orchestrations.medallion import medallion_orchestrator as medallion_function
from orchestrations.medallion_activities import PLAN
from shared.pipeline.payloads import GoldRequest, decode
from tests.medallion_history import GOLD_REQUEST, SILVER_BUILT
from tests.medallion_history import PLAN as RECORDED_PLAN
from tests.orchestrator_replay import History, names, scheduled

pytestmark = [
    pytest.mark.unit,
    # The SDK warns once when it decodes a result the orchestrator gave no type for.
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type"),
]

ORCHESTRATOR = medallion_function.build().get_user_function()
GOLD_DONE = {
    "model": "spend",
    "status": "succeeded",
    "engine": "duckdb",
    "run_id": "r",
    "message": "",
    "rows_out": 5,
    "polls": 0,
}


def _planned(plan: dict[str, Any] = RECORDED_PLAN) -> tuple[History, int]:
    """The run has its plan and has started its one silver table (the task id it returns)."""
    history = History(MEDALLION, {"trigger": "test"}).activity(PLAN, plan)
    silver = history.start_sub_orchestration(SILVER_TABLE, "i1:silver:payments")
    history.turn()
    return history, silver


def _cancel(history: History) -> History:
    return history.raised(CANCEL_EVENT, {"reason": "test"})


def test_the_plan_drives_silver_then_gold_with_typed_requests() -> None:
    history, silver = _planned()
    history.sub_orchestration_completed(silver, SILVER_BUILT)
    gold = history.start_sub_orchestration(GOLD_MODEL, "i1:gold:spend")
    history.turn().sub_orchestration_completed(gold, GOLD_DONE)

    state = history.replay(ORCHESTRATOR)

    assert state["isDone"], state
    assert scheduled(state) == [
        (PLAN, {"trigger": "test"}),
        (SILVER_TABLE, {"table": "payments", "run_id": "i1"}),
        (GOLD_MODEL, {**GOLD_REQUEST, "run_key": "i1"}),
    ]
    assert decode(scheduled(state)[2][1], GoldRequest).run_timeout_s == 600.0
    output = state["output"]
    assert (output["status"], output["engine"], output["failures"]) == ("succeeded", "duckdb", [])
    assert output["totals"]["rows_in"] == 3 and output["totals"]["quarantined"] == 1
    assert output["totals"]["checks_failed"] == 1 and output["totals"]["gold_rows_out"] == 5
    assert output["silver"] == {"silver/payments": SILVER_BUILT}
    assert output["gold"] == {"gold/spend": GOLD_DONE}
    assert state["customStatus"] == {
        "stage": "done",
        "engine": "duckdb",
        "tables": {"silver/payments": "built", "gold/spend": "succeeded"},
    }


def test_a_failed_silver_table_skips_the_models_that_read_it() -> None:
    history, silver = _planned()
    failed = {"table": "payments", "status": "failed", "error": "disk"}
    state = history.sub_orchestration_completed(silver, failed).replay(ORCHESTRATOR)
    assert state["isDone"] and names(state) == [PLAN, SILVER_TABLE]
    assert state["output"]["gold"]["gold/spend"] == {
        "model": "spend",
        "status": "skipped",
        "message": "silver failed: payments",
    }
    assert state["output"]["failures"] == ["silver/payments", "gold/spend"]


def test_a_plan_without_its_payload_shape_fails_the_run() -> None:
    renamed = {**RECORDED_PLAN, "timeout_s": 600.0}
    del renamed["run_timeout_s"]
    history = History(MEDALLION, {"trigger": "test"}).activity(PLAN, renamed)
    with pytest.raises(Exception, match="RunPlan.*run_timeout_s"):
        history.replay(ORCHESTRATOR)


def test_without_a_cancel_the_run_goes_on_to_gold() -> None:
    history, silver = _planned()
    state = history.sub_orchestration_completed(silver, SILVER_BUILT).replay(ORCHESTRATOR)
    assert not state["isDone"]
    assert names(state) == [PLAN, SILVER_TABLE, GOLD_MODEL]


def test_a_cancel_during_silver_lets_silver_finish_and_starts_no_gold() -> None:
    history, silver = _planned()
    _cancel(history).sub_orchestration_completed(silver, SILVER_BUILT)
    state = history.replay(ORCHESTRATOR)
    assert state["isDone"], state
    assert names(state) == [PLAN, SILVER_TABLE]
    output = state["output"]
    assert output["status"] == "cancelled"
    assert output["silver"]["silver/payments"]["status"] == "built"
    assert output["gold"]["gold/spend"]["status"] == "cancelled"


def test_a_cancel_before_the_plan_starts_nothing() -> None:
    history = History(MEDALLION)
    history.schedule_activity(PLAN)
    state = _cancel(history.turn()).replay(ORCHESTRATOR)
    assert state["isDone"] and names(state) == [PLAN]
    assert state["output"]["status"] == "cancelled"
    assert state["customStatus"]["stage"] == "cancelled"
