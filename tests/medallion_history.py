"""Recorded medallion payloads: activity answers and inputs as JSON values, as they sit in
histories. Literals on purpose: a payload field renamed on one side fails the replay tests."""

from __future__ import annotations

from typing import Any

PLAN: dict[str, Any] = {
    "silver": ["payments"],
    "gold": ["spend"],
    "reads": {"spend": ["payments"]},
    "engine": "duckdb",
    "poll_first_s": 5.0,
    "poll_max_s": 60.0,
    "run_timeout_s": 600.0,
}

CHECK_FAILED = {
    "rule": "range:amount",
    "blocking": True,
    "rows_checked": 3,
    "rows_failed": 1,
    "passed": False,
    "detail": "1 of 3 rows",
}

SILVER_BUILT: dict[str, Any] = {
    "table": "payments",
    "status": "built",
    "bronze_from": None,
    "bronze_to": 2,
    "rows_in": 3,
    "rows_out": 2,
    "duplicates": 0,
    "quarantined": 1,
    "late_rows": 0,
    "checks": [CHECK_FAILED],
    "failed_checks": ["range:amount"],
}

# The gold sub-orchestration's input for model `spend` in run `run-1`.
GOLD_REQUEST = {
    "model": "spend",
    "run_key": "run-1",
    "poll_first_s": 5.0,
    "poll_max_s": 60.0,
    "run_timeout_s": 600.0,
}


def run_state(status: str, message: str = "", rows_out: int | None = None) -> dict[str, Any]:
    """A remote run's state, as the state, cancel and submit activities answer it."""
    return {
        "engine": "databricks",
        "run_id": "42",
        "status": status,
        "message": message,
        "rows_out": rows_out,
    }


def submission(run: dict[str, Any] | None) -> dict[str, Any]:
    return {"model": "spend", "inputs": {"silver.payments": 2}, "run": run}


def permanent(error: str) -> dict[str, Any]:
    """An activity's answer for a failure a retry cannot fix."""
    return {"error": error, "permanent": True}
