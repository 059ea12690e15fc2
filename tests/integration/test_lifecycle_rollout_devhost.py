"""A challenger's rollout through the devhost: a champion trained on a day of history, then a
day in which payment amounts drift (x8); a challenger trained on both, which the gate passes;
then the approval, and the canary over live traffic posted while it runs.

On the drifted traffic the stale champion scores unlike the challenger (score PSI about 2.7),
so with the default limit (0.25) the first check fails and the rollout rolls back, the
champion's predictions bit-identical to before; with the limit raised
(`MODEL_CANARY_MAX_SCORE_PSI`), every check passes and the challenger is promoted."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from benchmarks.traffic import Drift, Traffic, simulated_clock
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.durable_http import status, wait_for
from tests.integration.ingest_helpers import eventually
from tests.integration.test_models_devhost import QUIET, _durable, _landed, _post

pytestmark = [pytest.mark.integration, pytest.mark.slow]

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
    """A champion trained on a day of history; then a day in which amounts drift (x3), which
    the champion has not seen and the challenger will."""
    end = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    drift_at = end - dt.timedelta(days=1)
    ticks = itertools.takewhile(
        lambda moment: moment < end, simulated_clock(end - dt.timedelta(days=2), 1.0)
    )
    traffic = Traffic(3, label_delay_scale=0.1, drift_at=drift_at, drift=Drift(amount_factor=8))
    events = list(traffic.events(ticks))
    before = [e for e in events if e["time"] < drift_at.isoformat()]
    landed: Counter[str] = Counter()
    for part in (before, events[len(before) :]):
        _post(host, part)
        landed += Counter(e["type"] for e in part)
        for event_type, count in landed.items():
            eventually(lambda t=event_type, c=count: _landed(data_dir, t) >= c, 120, event_type)
        run = requests.post(host.url("/api/pipelines/medallion/runs"), timeout=30)
        assert _durable(host, run, 120)["status"] == "succeeded"
        if part is before:
            started = requests.post(host.url("/api/models/fraud/train"), json=CHAMPION_MATURITY)
            assert _durable(host, started, 120)["aliases"] == ["champion"]


class LiveTraffic:
    """Payments and readings posted as they happen, until stopped."""

    def __init__(self, host: DevhostProcess, rate: float = 200.0) -> None:
        self.host = host
        self.stop = threading.Event()
        clock = simulated_clock(dt.datetime.now(dt.UTC), rate)
        self.events = Traffic(17, label_delay_scale=0.1).events(clock)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.25):
            batch = [next(self.events) for _ in range(50)]
            requests.post(
                self.host.url("/api/events"),
                data=json.dumps(batch),
                headers={"content-type": "application/cloudevents-batch+json"},
                timeout=30,
            )

    def __enter__(self) -> LiveTraffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


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


def test_an_approved_challenger_goes_through_the_canary_and_is_promoted(
    prepared: tuple[Path, Any],
) -> None:
    data_dir, start = prepared
    host = start(MODEL_CANARY_MAX_SCORE_PSI="50")
    _prepare(host, data_dir)
    instance = _awaiting_approval(host)
    approval = {"decision": "approve", "comment": "reviewed the gate figures"}
    answered = requests.post(host.url(f"/api/models/fraud/approvals/{instance}"), json=approval)
    assert answered.status_code == 202, answered.text
    with LiveTraffic(host):
        done = wait_for(host, instance, timeout=180)
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    assert output["step"] == "promoted", json.dumps(output["checks"])
    assert [c["percent"] for c in output["checks"]] == [10, 25, 50]
    assert all(c["verdict"] == "pass" for c in output["checks"])
    model = requests.get(host.url("/api/models/fraud")).json()
    assert model["aliases"] == {"champion": output["challenger"]}
    assert model["lifecycle"]["traffic"] == {str(output["challenger"]): 100}
    decisions = [d["decision"] for d in model["lifecycle"]["decisions"]]
    assert decisions[:2] == ["promoted", "approved"]


def test_a_canary_whose_challenger_fails_a_check_rolls_back_to_identical_predictions(
    prepared: tuple[Path, Any],
) -> None:
    data_dir, start = prepared
    host = start()
    _prepare(host, data_dir)
    before = _scores(host)
    instance = _awaiting_approval(host)
    requests.post(host.url(f"/api/models/fraud/approvals/{instance}"), json={"decision": "approve"})
    with LiveTraffic(host):
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
