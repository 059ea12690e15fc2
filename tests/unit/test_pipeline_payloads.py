"""The medallion's durable payloads: their wire shapes as recorded in histories, the codec, and
the activities' answers for inputs without their payload's shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrations.medallion_activities import medallion_build_silver, medallion_gold_state
from shared.batch.engine import RunStatus
from shared.pipeline.payloads import (
    ActivityFailure,
    FinishGold,
    GoldRequest,
    GoldSubmission,
    MaintenanceResult,
    PayloadError,
    RunPlan,
    RunState,
    SilverOutcome,
    SubmitGold,
    decode,
    decode_outcome,
    encode,
)
from shared.pipeline.quality import CheckResult
from tests.lakedata import medallion_for
from tests.medallion_history import (
    GOLD_REQUEST,
    PLAN,
    SILVER_BUILT,
    permanent,
    run_state,
    submission,
)

pytestmark = pytest.mark.unit

RECORDED: list[tuple[type[Any], Any]] = [
    (RunPlan, PLAN),
    (SilverOutcome, SILVER_BUILT),
    (GoldRequest, GOLD_REQUEST),
    (RunState, run_state("running")),
    (GoldSubmission, submission(run_state("pending"))),
    (GoldSubmission, submission(None)),
    (FinishGold, {"submission": submission(None), "final": run_state("succeeded", rows_out=3)}),
    (SubmitGold, {"model": "m", "run_key": "r", "instance_id": "c", "parent_instance_id": "p"}),
    (MaintenanceResult, {"table": "gold/spend", "status": "missing"}),
    (ActivityFailure, permanent("UnknownTable: no silver table 'x'")),
]


@pytest.mark.parametrize(("kind", "wire"), RECORDED, ids=lambda v: getattr(v, "__name__", ""))
def test_recorded_payloads_decode_and_encode_to_the_same_json(kind: type[Any], wire: Any) -> None:
    assert encode(decode(json.loads(json.dumps(wire)), kind)) == wire


def test_the_service_answers_in_the_recorded_shapes(tmp_path: Path) -> None:
    pipeline = medallion_for(tmp_path / "lake")
    assert encode(pipeline.run_plan()).keys() == PLAN.keys()
    assert (
        encode(pipeline.build_silver("payment_transaction", "run-1")).keys() == SILVER_BUILT.keys()
    )
    assert (
        encode(pipeline.submit_gold("account_daily_spend", "run-1")).keys()
        == submission(None).keys()
    )


def test_failed_checks_follow_the_checks() -> None:
    check = CheckResult("range:amount", True, 3, 1, False, "1 of 3 rows")
    outcome = SilverOutcome("payments", "built", checks=[check, CheckResult("n", True, 3, 0, True)])
    assert outcome.failed_checks == ["range:amount"]
    assert decode({**SILVER_BUILT, "failed_checks": []}, SilverOutcome).failed_checks == [
        "range:amount"
    ]


def test_inputs_recorded_before_the_run_ledger_have_no_owner() -> None:
    old = {**GOLD_REQUEST, "model": "spend"}  # the gold request itself, without the owner
    assert decode(old, SubmitGold).owner is None


def test_a_missing_or_renamed_field_names_the_payload_and_the_field() -> None:
    renamed = {**run_state("running"), "state": "running"}
    del renamed["status"]
    with pytest.raises(PayloadError, match="RunState.*`status`"):
        decode(renamed, RunState)
    with pytest.raises(PayloadError, match=r"GoldSubmission.*\$\.run\.status"):
        decode(submission({**run_state("x")}), GoldSubmission)


def test_an_answer_is_the_payload_or_the_failure_it_reports() -> None:
    assert decode_outcome(run_state("failed"), RunState) == RunState(
        "databricks", "42", RunStatus.FAILED
    )
    failure = decode_outcome(permanent("BatchError: refused"), RunState)
    assert failure == ActivityFailure("BatchError: refused", permanent=True)
    assert ActivityFailure.of(KeyError("x")) == ActivityFailure("KeyError: 'x'")


def test_an_activity_input_without_its_shape_is_a_permanent_failure() -> None:
    build = medallion_build_silver.build().get_user_function()
    answer = build({"tabel": "payments", "run_id": "r"})
    assert answer["permanent"] is True
    assert "SilverRequest" in answer["error"] and "`table`" in answer["error"]
    state = medallion_gold_state.build().get_user_function()
    assert state({})["error"].startswith("PayloadError: RunRef")


names = st.text(min_size=1, max_size=12)
run_states = st.builds(
    RunState,
    engine=names,
    run_id=names,
    status=st.sampled_from(list(RunStatus)),
    message=st.text(max_size=20),
    rows_out=st.none() | st.integers(min_value=0, max_value=2**53),
)


@given(
    model=names,
    inputs=st.dictionaries(names, st.none() | st.integers(min_value=0, max_value=2**31)),
    run=st.none() | run_states,
)
def test_submissions_survive_the_trip_through_a_history(
    model: str, inputs: dict[str, int | None], run: RunState | None
) -> None:
    payload = GoldSubmission(model, inputs, run)
    assert decode(json.loads(json.dumps(encode(payload))), GoldSubmission) == payload
