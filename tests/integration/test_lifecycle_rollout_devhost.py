"""A challenger's rollout through the devhost: a champion trained on a day of history, then a
day in which payment amounts drift (x8); a challenger trained on both, which the gate passes;
then the approval, and the canary over live traffic posted while it runs.

On the drifted traffic the stale champion scores unlike the challenger (score PSI about 2.7),
so with the default limit (0.25) the first check fails and the rollout rolls back, the
champion's predictions bit-identical to before; with the limit raised
(`MODEL_CANARY_MAX_SCORE_PSI`), every check passes and the challenger is promoted, even with
the host SIGKILLed mid-canary and restarted. Monitoring finds the drift and starts one
retraining, whose approval, never given, times out into an escalation."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from benchmarks.lifecycle_data import LiveTraffic, drifted_history
from benchmarks.traffic import Traffic, simulated_clock
from embedded.eventlog.log import EventLog, event_log_path
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.durable_http import WEBHOOKS, status, wait_for
from tests.integration.ingest_helpers import eventually
from tests.integration.test_models_devhost import QUIET, _durable, _landed, _post

# Each test waits out real canary steps (their own budgets add up to about 5 minutes), well
# past the suite's default 120 s a test; alone, the resumption test takes about 110 s.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

CHAMPION_MATURITY = {"label_maturity_hours": 8}
CHALLENGER_MATURITY = {"label_maturity_hours": 8}


def _host(data_dir: Path, **env: str) -> DevhostProcess:
    settings = {
        **QUIET,
        "PLATFORM_DATA_DIR": str(data_dir),
        "AzureWebJobs.monitor_models.Disabled": "true",
        "MODEL_CANARY_STEP_S": "12",  # the checks read 10 s slots that start within a step
        "MODEL_CANARY_MIN_ROWS": "20",
        "MODEL_APPROVAL_TIMEOUT_S": "600",
        **env,
    }
    return DevhostProcess(PROJECT_ROOT, data_dir, env=settings)


def _prepare(host: DevhostProcess, data_dir: Path) -> None:
    """A champion trained on a day of history; then a day in which amounts drift (x8), which
    the champion has not seen and the challenger will."""
    landed: Counter[str] = Counter()
    for part, then_train in zip(drifted_history(days=2, rate=1.0), (True, False), strict=True):
        _post(host, part)
        landed += Counter(e["type"] for e in part)
        for event_type, count in landed.items():
            eventually(lambda t=event_type, c=count: _landed(data_dir, t) >= c, 120, event_type)
        run = requests.post(host.url("/api/pipelines/medallion/runs"), timeout=30)
        assert _durable(host, run, 120)["status"] == "succeeded"
        if then_train:
            started = requests.post(host.url("/api/models/fraud/train"), json=CHAMPION_MATURITY)
            assert _durable(host, started, 120)["aliases"] == ["champion"]


def _awaiting_approval(host: DevhostProcess) -> str:
    started = requests.post(host.url("/api/models/fraud/retrain"), json=CHALLENGER_MATURITY)
    assert started.status_code == 202, started.text
    instance = str(started.json()["id"])

    def waiting() -> bool:
        custom = status(host, instance).get("customStatus") or {}
        assert custom.get("step") not in ("rejected", "failed"), json.dumps(custom)
        return custom.get("step") == "awaiting_approval"

    eventually(waiting, 180, "the gate")
    return instance


def _payments(count: int) -> list[dict[str, Any]]:
    """Payments of accounts no traffic uses, at a fixed time: their features, and so their
    scores, depend on the model alone."""
    clock = simulated_clock(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), 5.0)
    events = Traffic(23).events(clock)
    payments = (e for e in events if e["type"] == "payment.transaction")
    return [
        {
            "specversion": "1.0",
            "type": "payment.transaction",
            "time": "2026-12-01T12:00:00Z",
            "data": {**event["data"], "account_id": f"lifecycle-test-{i}"},
        }
        for i, event in enumerate(itertools.islice(payments, count))
    ]


RECORDS = _payments(20)


def _scores(host: DevhostProcess) -> list[dict[str, Any]]:
    answer = requests.post(host.url("/api/score/fraud"), json=RECORDS, timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["results"])


@pytest.fixture
def prepared(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    data_dir = tmp_path / "platform"
    processes: list[DevhostProcess] = []

    def start(**env: str) -> DevhostProcess:
        process = _host(data_dir, **env)
        processes.append(process)
        return process.wait_ready()

    yield data_dir, start
    for process in processes:
        process.stop()


def test_a_canary_whose_challenger_fails_a_check_rolls_back_to_identical_predictions(
    prepared: tuple[Path, Any],
) -> None:
    data_dir, start = prepared
    host = start()
    _prepare(host, data_dir)
    before = _scores(host)
    instance = _awaiting_approval(host)
    requests.post(host.url(f"/api/models/fraud/approvals/{instance}"), json={"decision": "approve"})
    with LiveTraffic(host.url):
        done = wait_for(host, instance, timeout=180)
    output = done["output"]
    assert output["step"] == "rolled_back", output
    assert any("score PSI" in reason for reason in output["checks"][0]["reasons"])
    model = requests.get(host.url("/api/models/fraud")).json()
    assert model["aliases"] == {"champion": 1}
    assert model["lifecycle"]["traffic"] == {"1": 100}
    assert model["lifecycle"]["decisions"][0]["decision"] == "rolled_back"

    def back() -> bool:  # each process looks at the registry again within MODEL_REFRESH_S
        return all(r["version"] == 1 for r in _scores(host))

    eventually(back, 30, "the champion alone")
    assert _scores(host) == before


def _history_of(host: DevhostProcess, instance: str) -> list[dict[str, Any]]:
    found = status(host, instance, showHistory="true", showHistoryOutput="true")
    return list(found.get("historyEvents") or [])


def test_a_rollout_killed_mid_canary_resumes_where_it_stopped_and_promotes(
    prepared: tuple[Path, Any],
) -> None:
    data_dir, start = prepared
    host = start(MODEL_CANARY_MAX_SCORE_PSI="50")
    _prepare(host, data_dir)
    instance = _awaiting_approval(host)
    approval = {"decision": "approve", "comment": "reviewed the gate figures"}
    answered = requests.post(host.url(f"/api/models/fraud/approvals/{instance}"), json=approval)
    assert answered.status_code == 202, answered.text

    def at_25() -> bool:
        custom = status(host, instance).get("customStatus") or {}
        return custom.get("step") == "canary" and custom.get("percent") == 25

    with LiveTraffic(host.url):
        eventually(at_25, 120, "the canary's second step")
    host.kill()  # mid-step: the 25 % step's timer is pending

    restarted = start(MODEL_CANARY_MAX_SCORE_PSI="50")
    model = requests.get(restarted.url("/api/models/fraud")).json()
    assert model["lifecycle"]["traffic"] == {"1": 75, str(model["aliases"].get("challenger")): 25}
    with LiveTraffic(restarted.url):
        done = wait_for(restarted, instance, timeout=180)
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    assert output["step"] == "promoted", json.dumps(output["checks"])
    assert [c["percent"] for c in output["checks"]] == [10, 25, 50]
    assert all(c["verdict"] == "pass" for c in output["checks"])
    model = requests.get(restarted.url("/api/models/fraud")).json()
    assert model["aliases"] == {"champion": output["challenger"]}
    assert model["lifecycle"]["traffic"] == {str(output["challenger"]): 100}
    decisions = model["lifecycle"]["decisions"]
    assert [d["decision"] for d in decisions[:2]] == ["promoted", "approved"]
    assert decisions[1]["approval"]["comment"] == approval["comment"]
    completed = [
        e for e in _history_of(restarted, instance) if e.get("EventType") == "TaskCompleted"
    ]
    stages = [
        e["Result"]["stage"] for e in completed if e.get("FunctionName") == "model_rollout_move"
    ]
    assert stages.count("canary 10%") == stages.count("canary 25%") == 1  # not run again
    verdicts = [
        e["Result"]["verdict"] for e in completed if e.get("FunctionName") == "model_canary_check"
    ]
    assert verdicts.count("pass") == 3 and "fail" not in verdicts


def test_injected_drift_starts_one_retraining_whose_approval_times_out(
    prepared: tuple[Path, Any],
) -> None:
    data_dir, start = prepared
    host = start(MODEL_APPROVAL_TIMEOUT_S="3", MODEL_APPROVAL_ON_TIMEOUT="escalate")
    _prepare(host, data_dir)  # the last day, the past hour included, has drifted amounts
    first = requests.post(host.url("/api/models/fraud/monitoring"), timeout=120)
    assert first.status_code == 200, first.text
    report = first.json()["report"]
    assert report["action"] == "retrain", report["reasons"]
    assert any("amount" in reason for reason in report["reasons"])
    retraining = first.json()["retraining"]
    assert retraining["started"] is True
    instance = retraining["instanceId"]
    assert instance.startswith("retrain:fraud:drift:")
    again = requests.post(host.url("/api/models/fraud/monitoring"), timeout=120)
    assert again.json()["report"]["action"] == "retrain"
    assert again.json()["retraining"] == {"instanceId": instance, "started": False}
    listed = requests.get(host.url(f"{WEBHOOKS}/instances"), timeout=30).json()
    assert [i["instanceId"] for i in listed if i["name"] == "retrain_model"] == [instance]
    kept = requests.get(host.url("/api/models/fraud/monitoring"), timeout=30).json()["reports"]
    assert [r["action"] for r in kept] == ["retrain", "retrain"]

    # Nobody answers: after MODEL_APPROVAL_TIMEOUT_S the policy escalates and stops.
    done = wait_for(host, instance, timeout=180)
    assert done["runtimeStatus"] == "Completed" and done["output"]["step"] == "stopped", done
    assert done["output"]["approval"]["timed_out"] is True
    late = requests.post(
        host.url(f"/api/models/fraud/approvals/{instance}"), json={"decision": "approve"}
    )
    assert late.status_code == 409
    model = requests.get(host.url("/api/models/fraud")).json()
    assert model["aliases"] == {"champion": 1} and model["lifecycle"]["traffic"] == {"1": 100}
    escalated = model["lifecycle"]["decisions"][0]
    assert escalated["decision"] == "escalated" and escalated["approval"]["timed_out"] is True
    assert escalated["actor"]["kind"] == "policy"
    announced = [e for e in _alerts_hub(data_dir) if e["type"] == "platform.model.escalation"]
    assert [e["id"] for e in announced] == [escalated["id"]]
    assert announced[0]["data"]["to_version"] == escalated["to_version"]


def _alerts_hub(data_dir: Path) -> list[dict[str, Any]]:
    with EventLog(event_log_path(data_dir)) as log:
        return [
            json.loads(event.body)
            for partition in range(log.hubs().get("alerts", 0))
            for event in log.read("alerts", partition, max_count=1_000_000)
        ]
