"""The model lifecycle through the devhost: labelled history posted over HTTP, a champion
trained, then a retraining over HTTP whose challenger, identical to the champion, the gate
rejects (recorded on the version, in a decision document and the audit trail); monitoring
over HTTP into gold/model_monitoring; and the approval route's refusals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from deltalake import DeltaTable

from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.integration.ingest_helpers import eventually
from tests.integration.test_models_devhost import QUIET, _durable, _history, _landed, _post

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIFECYCLE = {
    **QUIET,
    "AzureWebJobs.monitor_models.Disabled": "true",
    "MODEL_CANARY_STEP_S": "2",
    "MODEL_APPROVAL_TIMEOUT_S": "600",
}
MATURITY = {"label_maturity_hours": 16}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevhostProcess, Path]]:
    """One host for the module: posting history and training take most of its time."""
    data_dir = tmp_path_factory.mktemp("lifecycle") / "platform"
    process = DevhostProcess(
        PROJECT_ROOT, data_dir, env={"PLATFORM_DATA_DIR": str(data_dir), **LIFECYCLE}
    )
    try:
        yield _trained(process.wait_ready(), data_dir), data_dir
    finally:
        process.stop()


def _trained(host: DevhostProcess, data_dir: Path) -> DevhostProcess:
    events = _history(days=2, rate=0.5)
    _post(host, events)
    for event_type, count in Counter(e["type"] for e in events).items():
        eventually(lambda t=event_type, c=count: _landed(data_dir, t) >= c, 120, event_type)
    run = requests.post(host.url("/api/pipelines/medallion/runs"), timeout=30)
    assert _durable(host, run, 120)["status"] == "succeeded"
    started = requests.post(host.url("/api/models/fraud/train"), json=MATURITY, timeout=30)
    assert _durable(host, started, 120)["aliases"] == ["champion"]
    return host


def _model(host: DevhostProcess) -> dict[str, Any]:
    answer = requests.get(host.url("/api/models/fraud"), timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_challenger_identical_to_the_champion_is_rejected_by_the_gate(
    trained: tuple[DevhostProcess, Path],
) -> None:
    host, _ = trained
    started = requests.post(host.url("/api/models/fraud/retrain"), json=MATURITY, timeout=30)
    assert started.status_code == 202, started.text
    again = requests.post(host.url("/api/models/fraud/retrain"), json=MATURITY, timeout=30)
    assert again.status_code == 200 and again.json()["id"] == started.json()["id"]
    output = _durable(host, started, 180)
    assert output["step"] == "rejected", output
    assert output["champion"] == 1 and output["challenger"] == 2
    assert output["gate"]["uplift"] == 0.0
    assert any("identical" in reason or "interval" in reason for reason in output["reasons"])

    model = _model(host)
    assert model["aliases"] == {"champion": 1}
    lifecycle = model["lifecycle"]
    assert lifecycle["stage"] == "rejected" and lifecycle["traffic"] == {"1": 100}
    assert lifecycle["instance_id"] == started.json()["id"]
    decision = lifecycle["decisions"][0]
    assert decision["decision"] == "rejected" and decision["to_version"] == 2
    assert decision["actor"] == {"kind": "orchestration", "id": started.json()["id"]}
    challenger = model["versions"][0]
    assert challenger["version"] == 2 and challenger["validation_status"] == "rejected"
    assert challenger["validation_reasons"] == output["reasons"]

    audit = requests.get(host.url("/api/audit"), params={"top": 500}, timeout=30)
    actions = [record["action"] for record in audit.json()["records"]]
    assert "model_rejected" in actions and "model_retraining_started" in actions


def test_monitoring_runs_over_http_and_keeps_its_reports(
    trained: tuple[DevhostProcess, Path],
) -> None:
    host, data_dir = trained
    ran = requests.post(host.url("/api/models/fraud/monitoring"), timeout=120)
    assert ran.status_code == 200, ran.text
    report = ran.json()["report"]
    assert report["model"] == "fraud" and report["model_version"] == 1
    assert report["action"] in ("none", "warn", "retrain")
    assert (ran.json()["retraining"] is not None) == (report["action"] == "retrain")
    kept = requests.get(host.url("/api/models/fraud/monitoring"), params={"top": 5}, timeout=30)
    assert kept.status_code == 200
    reports = kept.json()["reports"]
    assert reports[0]["trigger"] == "http" and reports[0]["features"] == report["features"]
    assert DeltaTable(str(data_dir / "lake" / "gold" / "model_monitoring")).count() >= 1
    for bad in ("0", "101", "x", "-1", "1e2"):
        refused = requests.get(
            host.url("/api/models/fraud/monitoring"), params={"top": bad}, timeout=30
        )
        assert refused.status_code == 400, bad
    assert requests.get(host.url("/api/models/recommendations/monitoring")).status_code == 404
    untrained = requests.post(host.url("/api/models/maintenance/monitoring"), timeout=60)
    assert untrained.status_code == 409 and "champion" in untrained.json()["error"]


def test_the_approval_route_refuses_what_is_not_an_approval_it_waits_for(
    trained: tuple[DevhostProcess, Path],
) -> None:
    host, _ = trained
    decided = _model(host)["lifecycle"]["decisions"]
    finished = decided[-1]["instance_id"]  # the rejected retraining: not waiting any more
    url = host.url(f"/api/models/fraud/approvals/{finished}")
    late = requests.post(url, json={"decision": "approve"}, timeout=30)
    assert late.status_code == 409 and late.json()["step"] == "rejected"
    for body in ({"decision": "maybe"}, {"decision": "approve", "comment": "x" * 501}, []):
        assert requests.post(url, json=body, timeout=30).status_code == 400
    for instance in ("retrain:fraud:http:20200101T000000", "train:fraud:1", "x" * 300):
        missing = requests.post(
            host.url(f"/api/models/fraud/approvals/{instance}"),
            json={"decision": "approve"},
            timeout=30,
        )
        assert missing.status_code == 404, instance
    other = requests.post(
        host.url(f"/api/models/recommendations/approvals/{finished}"),
        json={"decision": "approve"},
        timeout=30,
    )
    assert other.status_code == 404
