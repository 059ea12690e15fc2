"""The silver-table and maintenance orchestrators, replayed by the SDK over recorded histories:
what they schedule, and how permanent and transient activity failures end up in their output."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrations.medallion import (
    MAINTENANCE,
    SILVER_TABLE,
    medallion_maintenance,
    medallion_silver_table,
)
from orchestrations.medallion_activities import BUILD_SILVER, MAINTAIN_TABLE, MAINTENANCE_PLAN
from shared.pipeline.payloads import MaintenanceTarget, SilverRequest, decode
from tests.medallion_history import SILVER_BUILT, permanent
from tests.orchestrator_replay import History, scheduled

pytestmark = [
    pytest.mark.unit,
    # The SDK warns once when it decodes a result the orchestrator gave no type for.
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type"),
]

SILVER = medallion_silver_table.build().get_user_function()
MAINTAIN = medallion_maintenance.build().get_user_function()
REQUEST = {"table": "payments", "run_id": "run-1"}


def _silver(history: History) -> dict[str, Any]:
    return history.replay(SILVER, parent="run-1")


def test_a_silver_table_builds_and_reports_its_outcome() -> None:
    state = _silver(History(SILVER_TABLE, REQUEST).activity(BUILD_SILVER, SILVER_BUILT))
    assert state["isDone"]
    assert scheduled(state) == [(BUILD_SILVER, REQUEST)]
    assert decode(scheduled(state)[0][1], SilverRequest) == SilverRequest("payments", "run-1")
    assert state["output"] == SILVER_BUILT


def test_a_permanent_silver_failure_is_reported_without_a_retry() -> None:
    history = History(SILVER_TABLE, REQUEST)
    history.activity(BUILD_SILVER, permanent("UnknownTable: no silver table 'payments'"))
    state = _silver(history)
    assert state["isDone"] and scheduled(state) == [(BUILD_SILVER, REQUEST)]
    assert state["output"] == {
        "table": "payments",
        "status": "failed",
        "error": "UnknownTable: no silver table 'payments'",
    }


def test_a_transient_silver_failure_is_retried_then_reported() -> None:
    for attempts in (1, 3):
        failing = History(SILVER_TABLE, REQUEST).activity_failed(BUILD_SILVER, "disk", attempts)
        assert not _silver(failing)["isDone"]  # the retry policy tries again
    recovered = History(SILVER_TABLE, REQUEST).activity_failed(BUILD_SILVER, "disk", 2)
    assert _silver(recovered.activity(BUILD_SILVER, SILVER_BUILT))["output"] == SILVER_BUILT
    exhausted = History(SILVER_TABLE, REQUEST).activity_failed(BUILD_SILVER, "disk", 4)
    state = _silver(exhausted)
    assert state["isDone"]
    assert state["output"] == {"table": "payments", "status": "failed", "error": "disk"}


TARGETS = [
    {"layer": "silver", "table": "payments", "zorder": ["account_id"]},
    {"layer": "gold", "table": "spend", "zorder": []},
]
MAINTAINED = {
    "table": "silver/payments",
    "status": "maintained",
    "operation": "z_order",
    "zorder": ["account_id"],
    "files_added": 1,
    "files_removed": 4,
    "vacuumed_files": 4,
    "version": 7,
}


def test_maintenance_goes_through_the_tables_one_after_another() -> None:
    history = History(MAINTENANCE).activity(MAINTENANCE_PLAN, TARGETS)
    history.activity(MAINTAIN_TABLE, MAINTAINED)
    assert scheduled(history.replay(MAINTAIN)) == [
        (MAINTENANCE_PLAN, None),
        (MAINTAIN_TABLE, TARGETS[0]),
        (MAINTAIN_TABLE, TARGETS[1]),  # only once the first one is done
    ]
    history.activity(MAINTAIN_TABLE, {"table": "gold/spend", "status": "missing"})

    state = history.replay(MAINTAIN)

    assert state["isDone"]
    assert decode(scheduled(state)[1][1], MaintenanceTarget).zorder == ("account_id",)
    assert state["output"] == {
        "tables": [MAINTAINED, {"table": "gold/spend", "status": "missing"}],
        "status": "succeeded",
        "failures": [],
    }


def test_maintenance_reports_permanent_and_transient_failures_per_table() -> None:
    history = History(MAINTENANCE).activity(MAINTENANCE_PLAN, TARGETS)
    history.activity(MAINTAIN_TABLE, permanent("StateConflict: moved on"))
    history.activity_failed(MAINTAIN_TABLE, "disk full", 4)

    state = history.replay(MAINTAIN)

    assert state["isDone"]
    assert state["output"] == {
        "tables": [
            {"table": "silver/payments", "status": "failed", "error": "StateConflict: moved on"},
            {"table": "gold/spend", "status": "failed", "error": "disk full"},
        ],
        "status": "failed",
        "failures": ["silver/payments", "gold/spend"],
    }
