"""The medallion orchestrator, replayed by the SDK: a `cancel` stops the run between steps."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrations.medallion import CANCEL_EVENT, GOLD_MODEL, SILVER_TABLE
from orchestrations.medallion import medallion as medallion_function
from tests.orchestrator_replay import first_turn, history_event, replay

pytestmark = [
    pytest.mark.unit,
    # The SDK warns once when it decodes a result the orchestrator gave no type for.
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type"),
]

PLAN = {
    "silver": ["payments"],
    "gold": ["spend"],
    "reads": {"spend": ["payments"]},
    "engine": "duckdb",
    "poll_first_s": 1,
    "poll_max_s": 2,
    "run_timeout_s": 60,
}
SILVER_DONE = {"table": "payments", "status": "succeeded", "rows_in": 3, "rows_out": 3}
ORCHESTRATOR = medallion_function.build().get_user_function()


def _planned() -> list[dict[str, Any]]:
    """The run has its plan and has started its one silver table (task 1)."""
    return [
        *first_turn("medallion", json.dumps({"trigger": "test"})),
        history_event(4, 0, Name="medallion_plan"),
        history_event(13),
        history_event(12),
        history_event(5, TaskScheduledId=0, Result=json.dumps(PLAN)),
        history_event(7, 1, Name=SILVER_TABLE, InstanceId="i1:silver:payments"),
        history_event(13),
        history_event(12),
    ]


def _cancel() -> dict[str, Any]:
    return history_event(15, Name=CANCEL_EVENT, Input=json.dumps({"reason": "test"}))


def _silver_done() -> dict[str, Any]:
    return history_event(8, TaskScheduledId=1, Result=json.dumps(SILVER_DONE))


def _started_orchestrators(state: dict[str, Any]) -> list[str]:
    """Names of the sub-orchestrators among the actions (compound ones flattened)."""
    names: list[str] = []

    def walk(action: dict[str, Any]) -> None:
        if action.get("functionName") in (SILVER_TABLE, GOLD_MODEL):
            names.append(action["functionName"])
        for child in action.get("compoundActions", []) or []:
            walk(child)

    for group in state["actions"]:
        for action in group if isinstance(group, list) else [group]:
            walk(action)
    return names


def test_without_a_cancel_the_run_goes_on_to_gold() -> None:
    state = json.loads(replay(ORCHESTRATOR, [*_planned(), _silver_done()]))
    assert not state["isDone"]
    assert _started_orchestrators(state) == [SILVER_TABLE, GOLD_MODEL]


def test_a_cancel_during_silver_lets_silver_finish_and_starts_no_gold() -> None:
    state = json.loads(replay(ORCHESTRATOR, [*_planned(), _cancel(), _silver_done()]))
    assert state["isDone"], state
    assert _started_orchestrators(state) == [SILVER_TABLE]
    output = state["output"] if isinstance(state["output"], dict) else json.loads(state["output"])
    assert output["status"] == "cancelled"
    custom = state["customStatus"]
    assert (json.loads(custom) if isinstance(custom, str) else custom)["stage"] == "cancelled"
    assert output["silver"]["silver/payments"]["status"] == "succeeded"
    assert output["gold"]["gold/spend"]["status"] == "cancelled"


def test_a_cancel_before_the_plan_starts_nothing() -> None:
    history = [
        *first_turn("medallion", None),
        history_event(4, 0, Name="medallion_plan"),
        history_event(13),
        history_event(12),
        _cancel(),
    ]
    state = json.loads(replay(ORCHESTRATOR, history))
    assert state["isDone"] and _started_orchestrators(state) == []
    output = state["output"] if isinstance(state["output"], dict) else json.loads(state["output"])
    assert output["status"] == "cancelled"
