"""The retraining orchestrator, replayed by the SDK over recorded histories: a rejected
challenger stops at the gate; an approval or a timeout decides; the canary moves step by step
and promotes, waits when there is too little traffic, or rolls back on a failed check."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrations.lifecycle import APPROVAL_EVENT
from orchestrations.lifecycle import retrain_orchestrator as retrain_function
from orchestrations.lifecycle_activities import (
    CHECK_ACTIVITY,
    DECIDE_ACTIVITY,
    GATE_ACTIVITY,
    MOVE_ACTIVITY,
)
from orchestrations.lifecycle_start import RETRAIN, policy_of, retrain_instance, trigger_window
from orchestrations.model_training_remote import TRAIN_CHALLENGER
from shared.config import LifecycleSettings
from tests.orchestrator_replay import T0, History, scheduled

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:azure.functions df_loads was called without expected_type"),
]

ORCHESTRATOR = retrain_function.build().get_user_function()
POLICY = policy_of(LifecycleSettings(approval_timeout_s=600, canary_step_s=60))
REQUEST = {"name": "fraud", "trigger": "http", "window": "20260105T080000", "policy": POLICY}
MOVED = {"traffic": {}, "stage": "x"}
GATE_PASSED = {"passed": True, "reasons": [], "metrics": {"uplift": 0.04}, "champion": 1}
CHECK_PASSED = {"verdict": "pass", "reasons": [], "metrics": {"score_psi": 0.02}}
APPROVE = {"decision": "approve", "comment": "fine", "by": {"kind": "user", "id": "u1"}}


def _trained(history: History, answer: dict[str, Any]) -> History:
    """The challenger's training sub-orchestration answers `answer`."""
    task = history.start_sub_orchestration(TRAIN_CHALLENGER, "i1:train")
    return history.turn().sub_orchestration_completed(task, answer)


def _gated(gate: dict[str, Any] = GATE_PASSED) -> History:
    history = History(RETRAIN, REQUEST).activity(MOVE_ACTIVITY, MOVED)
    _trained(history, {"name": "fraud", "version": 2, "aliases": []})
    history.activity(MOVE_ACTIVITY, MOVED)
    return history.activity(GATE_ACTIVITY, gate)


def _awaiting() -> tuple[History, int]:
    history = _gated().activity(MOVE_ACTIVITY, MOVED)
    timer = history.create_timer(history.now + timedelta(seconds=600))
    history.turn()
    return history, timer


def _approved() -> History:
    history, _ = _awaiting()
    return (
        history.raised(APPROVAL_EVENT, APPROVE)
        .turn()
        .completed(history.schedule_activity(DECIDE_ACTIVITY), {"id": "d"})
    )


def _moves(state: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (payload["action"], payload.get("percent"))
        for name, payload in scheduled(state)
        if name == MOVE_ACTIVITY
    ]


def test_a_rejected_challenger_stops_at_the_gate() -> None:
    rejected = {"passed": False, "reasons": ["no uplift"], "metrics": {}, "champion": 1}
    state = _gated(rejected).activity(MOVE_ACTIVITY, MOVED).replay(ORCHESTRATOR)
    assert state["isDone"]
    assert state["output"]["step"] == "rejected" and state["output"]["reasons"] == ["no uplift"]
    assert [n for n, _ in scheduled(state)] == [
        MOVE_ACTIVITY,
        TRAIN_CHALLENGER,
        MOVE_ACTIVITY,
        GATE_ACTIVITY,
        MOVE_ACTIVITY,
    ]
    assert scheduled(state)[1][1] == {"name": "fraud", "run_id": "i1"}  # the version's run


def test_the_first_version_serves_at_once() -> None:
    history = History(RETRAIN, REQUEST).activity(MOVE_ACTIVITY, MOVED)
    _trained(history, {"name": "fraud", "version": 1, "aliases": ["champion"]})
    state = history.activity(MOVE_ACTIVITY, MOVED).replay(ORCHESTRATOR)
    assert state["isDone"] and state["output"]["step"] == "promoted"
    assert GATE_ACTIVITY not in [n for n, _ in scheduled(state)]


def test_a_challenger_that_passes_waits_for_an_approval_or_the_timer() -> None:
    history, _ = _awaiting()
    state = history.replay(ORCHESTRATOR)
    assert not state["isDone"]
    assert state["customStatus"]["step"] == "awaiting_approval"
    assert state["customStatus"]["approve"].startswith("POST /api/models/fraud/approvals/")
    fires = [at for name, at in scheduled(state) if name == "timer"]
    assert len(fires) == 1 and fires[0].startswith("2026-01-05T08:10:00")


def test_a_refusal_stops_the_rollout_and_is_recorded() -> None:
    history, _ = _awaiting()
    refusal = {"decision": "reject", "comment": "no", "by": {"kind": "user", "id": "u2"}}
    history.raised(APPROVAL_EVENT, refusal).turn()
    history.activity(DECIDE_ACTIVITY, {"id": "d"})
    state = history.activity(MOVE_ACTIVITY, MOVED).replay(ORCHESTRATOR)
    assert state["isDone"] and state["output"]["step"] == "stopped"
    decided = [p for n, p in scheduled(state) if n == DECIDE_ACTIVITY]
    assert decided[0]["decision"] == "approval_refused" and decided[0]["approval"] == refusal
    assert ("share", 10) not in _moves(state)


def test_an_event_that_is_not_an_approval_stops_the_rollout() -> None:
    history, _ = _awaiting()
    history.raised(APPROVAL_EVENT, "yes").turn().activity(DECIDE_ACTIVITY, {"id": "d"})
    state = history.activity(MOVE_ACTIVITY, MOVED).replay(ORCHESTRATOR)
    assert state["output"]["step"] == "stopped"


@pytest.mark.parametrize(
    ("policy", "decision"), [("escalate", "escalated"), ("promote", "approved")]
)
def test_a_timeout_follows_the_policy(policy: str, decision: str) -> None:
    request = {**REQUEST, "policy": {**POLICY, "on_approval_timeout": policy}}
    history = History(RETRAIN, request).activity(MOVE_ACTIVITY, MOVED)
    _trained(history, {"name": "fraud", "version": 2, "aliases": []})
    history.activity(MOVE_ACTIVITY, MOVED).activity(GATE_ACTIVITY, GATE_PASSED)
    history.activity(MOVE_ACTIVITY, MOVED)
    deadline = history.now + timedelta(seconds=600)
    timer = history.create_timer(deadline)
    history.turn(600).timer_fired(timer, deadline)
    history.activity(DECIDE_ACTIVITY, {"id": "d"})
    state = history.replay(ORCHESTRATOR)
    decided = [p for n, p in scheduled(state) if n == DECIDE_ACTIVITY][0]
    assert decided["decision"] == decision and decided["approval"]["timed_out"] is True
    if policy == "escalate":
        state = history.activity(MOVE_ACTIVITY, MOVED).replay(ORCHESTRATOR)
        assert state["isDone"] and state["output"]["step"] == "stopped"
    else:
        assert ("share", 10) in _moves(state)


def _step(history: History, verdict: dict[str, Any]) -> History:
    history.activity(MOVE_ACTIVITY, MOVED)
    history.timer(history.now + timedelta(seconds=60))
    return history.activity(CHECK_ACTIVITY, verdict)


def test_a_canary_that_passes_every_check_promotes() -> None:
    history = _approved()
    for _ in (10, 25, 50):
        _step(history, CHECK_PASSED)
    history.activity(MOVE_ACTIVITY, MOVED).activity(DECIDE_ACTIVITY, {"id": "d"})
    state = history.activity(MOVE_ACTIVITY, MOVED).replay(ORCHESTRATOR)
    assert state["isDone"] and state["output"]["step"] == "promoted"
    assert _moves(state) == [
        ("stage", None),
        ("stage", None),
        ("stage", None),
        ("share", 10),
        ("share", 25),
        ("share", 50),
        ("promote", None),
        ("stage", None),
    ]
    checks = [p for n, p in scheduled(state) if n == CHECK_ACTIVITY]
    assert [(c["champion"], c["challenger"]) for c in checks] == [(1, 2)] * 3
    assert checks[0]["since"] < checks[0]["until"]
    decided = [p for n, p in scheduled(state) if n == DECIDE_ACTIVITY]
    assert [d["decision"] for d in decided] == ["approved", "promoted"]
    assert decided[1]["from_version"] == 1 and decided[1]["to_version"] == 2
    assert decided[1]["gate"] == {"uplift": 0.04}


def test_a_failed_check_rolls_back() -> None:
    history = _approved()
    _step(history, CHECK_PASSED)
    failed = {"verdict": "fail", "reasons": ["score PSI 0.9"], "metrics": {"score_psi": 0.9}}
    _step(history, failed)
    history.activity(MOVE_ACTIVITY, MOVED).activity(DECIDE_ACTIVITY, {"id": "d"})
    state = history.activity(MOVE_ACTIVITY, MOVED).replay(ORCHESTRATOR)
    assert state["isDone"] and state["output"]["step"] == "rolled_back"
    assert _moves(state)[-2:] == [("roll_back", None), ("stage", None)]
    assert ("promote", None) not in _moves(state)
    rolled = [p for n, p in scheduled(state) if n == DECIDE_ACTIVITY][-1]
    assert rolled["decision"] == "rolled_back" and rolled["reasons"] == ["score PSI 0.9"]
    assert (rolled["from_version"], rolled["to_version"]) == (2, 1)


def test_a_quiet_step_waits_then_rolls_back_when_nothing_can_be_judged() -> None:
    history = _approved()
    wait = {"verdict": "wait", "reasons": ["too little traffic"], "metrics": {}}
    history.activity(MOVE_ACTIVITY, MOVED)
    for _ in range(1 + POLICY["max_waits"]):
        history.timer(history.now + timedelta(seconds=60))
        history.activity(CHECK_ACTIVITY, wait)
    state = history.replay(ORCHESTRATOR)
    assert _moves(state)[-1] == ("roll_back", None)
    checks = [p for n, p in scheduled(state) if n == CHECK_ACTIVITY]
    assert len({c["since"] for c in checks}) == 1  # the step's window grows while it waits


def test_a_step_after_a_wait_judges_the_whole_step() -> None:
    history = _approved()
    wait = {"verdict": "wait", "reasons": ["too little traffic"], "metrics": {}}
    history.activity(MOVE_ACTIVITY, MOVED)
    history.timer(history.now + timedelta(seconds=60)).activity(CHECK_ACTIVITY, wait)
    history.timer(history.now + timedelta(seconds=60)).activity(CHECK_ACTIVITY, CHECK_PASSED)
    state = history.replay(ORCHESTRATOR)
    assert _moves(state)[-1] == ("share", 25)


def test_instances_are_one_per_model_and_trigger_window() -> None:
    moment = T0 + timedelta(minutes=7, seconds=3)
    assert trigger_window("schedule", moment) == "20260105"
    assert trigger_window("drift", moment) == "20260105T08"
    assert trigger_window("http", moment) == "20260105T080703"
    assert retrain_instance("fraud", "drift", "20260105T08") == "retrain:fraud:drift:20260105T08"
    for trigger, window in (("cron", "20260105"), ("drift", "x/../y"), ("http", "")):
        with pytest.raises(ValueError):
            retrain_instance("fraud", trigger, window)
