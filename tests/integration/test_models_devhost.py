"""The models end to end through the devhost: labelled history posted over HTTP, the medallion
pipeline run, the three models trained over HTTP as Durable orchestrations, listed, and the
ONNX file downloaded and run."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
import requests
from deltalake import DeltaTable

from benchmarks.traffic import Traffic, simulated_clock
from shared.models.onnx_export import probabilities, session
from shared.pipeline.lake import table_name
from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.durable_http import wait_for
from tests.integration.ingest_helpers import eventually

pytestmark = pytest.mark.integration

QUIET = {
    "PIPELINE_POLL_FIRST_S": "0.2",
    "PIPELINE_POLL_MAX_S": "0.5",
    "DEVHOST_EVENTHUB_POLL_MS": "20",
    "AzureWebJobs.hourly_pipeline_run.Disabled": "true",
    "AzureWebJobs.nightly_table_maintenance.Disabled": "true",
    "AzureWebJobs.train_models.Disabled": "true",
    "MODEL_REFRESH_S": "0.5",
}


def _history(days: float, rate: float) -> list[dict[str, Any]]:
    end = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    ticks = itertools.takewhile(
        lambda moment: moment < end, simulated_clock(end - dt.timedelta(days=days), rate)
    )
    return list(Traffic(3, label_delay_scale=0.1).events(ticks))


def _post(host: DevhostProcess, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        response = requests.post(
            host.url("/api/events"),
            data=json.dumps(events[start : start + 1000]),
            headers={"content-type": "application/cloudevents-batch+json"},
            timeout=60,
        )
        assert response.status_code == 202 and not response.json()["rejected"], response.text


def _landed(data_dir: Path, event_type: str) -> int:
    path = data_dir / "lake" / "bronze" / table_name(event_type)
    if not (path / "_delta_log").exists():
        return 0
    return DeltaTable(str(path)).count()


def _durable(host: DevhostProcess, response: requests.Response, timeout: float) -> Any:
    assert response.status_code == 202, response.text
    done = wait_for(host, response.json()["id"], timeout=timeout)
    assert done["runtimeStatus"] == "Completed", done
    return done["output"]


def test_models_train_over_http_from_posted_history(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "platform"
    host = start_devhost(
        PROJECT_ROOT, env={"PLATFORM_DATA_DIR": str(data_dir), **QUIET}, data_dir=data_dir
    )
    events = _history(days=2, rate=0.5)
    _post(host, events)
    for event_type, count in Counter(e["type"] for e in events).items():
        eventually(lambda t=event_type, c=count: _landed(data_dir, t) >= c, 120, event_type)
    run = requests.post(host.url("/api/pipelines/medallion/runs"), timeout=30)
    assert _durable(host, run, 120)["status"] == "succeeded"

    trained = {}
    for name, body in (
        ("fraud", {"label_maturity_hours": 16}),
        ("maintenance", {}),
        ("recommendations", {}),
    ):
        started = requests.post(host.url(f"/api/models/{name}/train"), json=body, timeout=30)
        trained[name] = _durable(host, started, 120)
        assert trained[name]["version"] == 1, trained[name]
        assert trained[name]["aliases"] == ["champion"]
    assert trained["fraud"]["metrics"]["pr_auc"] > 0.5

    listed = requests.get(host.url("/api/models"), timeout=30).json()["models"]
    assert {m["name"]: m["aliases"] for m in listed} == {
        name: {"champion": 1} for name in ("fraud", "maintenance", "recommendations")
    }
    detail = requests.get(host.url("/api/models/fraud"), timeout=30).json()
    version = detail["versions"][0]
    assert version["training_data"]["bronze.payment_transaction"] >= 0
    assert version["signature"]["inputs"][0]["columns"][0] == "amount"

    onnx = requests.get(host.url("/api/models/fraud/versions/1/onnx"), timeout=30)
    assert onnx.status_code == 200
    example = np.asarray([version["input_example"]], dtype=np.float32)
    assert 0.0 <= float(probabilities(session(onnx.content), example)[0]) <= 1.0
    again = requests.post(host.url("/api/models/churn/train"), timeout=30)
    assert again.status_code == 404 and "fraud" in again.json()["error"]

    # Scored as they land, by the champions, once loaded (landing never waits for them).
    live = Traffic(11, label_delay_scale=0.1).events(
        simulated_clock(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), 10.0)
    )

    def scored() -> bool:
        _post(host, list(itertools.islice(live, 300)))
        table = DeltaTable(str(data_dir / "lake" / "bronze" / "payment_transaction"))
        rows = table.to_pyarrow_table(columns=["score", "model_name", "model_version"])
        return bool(rows.filter(pc.is_valid(rows["score"])).num_rows)

    eventually(scored, 60, "payments scored by the fraud champion")
    payments = DeltaTable(str(data_dir / "lake" / "bronze" / "payment_transaction"))
    rows = payments.to_pyarrow_table().to_pylist()
    reasons = Counter(r["score_reason"] for r in rows)
    assert reasons[None] > 0 and set(reasons) <= {None, "no_model", "already_scored"}
    scored_rows = [r for r in rows if r["score"] is not None]
    assert {(r["model_name"], r["model_version"]) for r in scored_rows} == {("fraud", 1)}
    assert all(0.0 <= r["score"] <= 1.0 for r in scored_rows)

    # The payments over the threshold raised alerts, once each, announced on the alerts hub.
    threshold = trained["fraud"]["metrics"]["threshold"]
    over = {r["event_id"] for r in rows if r["score"] is not None and r["score"] >= threshold}
    assert over, "the live traffic holds fraud the champion flags"

    def alerted() -> list[dict[str, Any]]:
        found = requests.get(host.url("/api/alerts"), params={"top": "500"}, timeout=30).json()
        return [a for a in found["alerts"] if a["type"] == "fraud"]

    eventually(lambda: over <= {a["event_id"] for a in alerted()}, 60, "alerts of every flag")
    alerts = alerted()
    assert len({a["event_id"] for a in alerts}) == len(alerts)  # one per event
    assert all(a["published"] and a["top_features"] for a in alerts)
    assert all(a["score"] >= a["threshold"] == threshold for a in alerts)

    # Over HTTP: a score with the account's online features, and recommendations.
    payment = next(e for e in events if e["type"] == "payment.transaction")
    scored_now = requests.post(host.url("/api/score/fraud"), json=[payment, payment["data"]])
    assert scored_now.status_code == 200, scored_now.text
    results = scored_now.json()["results"]
    assert len(results) == 2 and {r["version"] for r in results} == {1}
    refused = requests.post(host.url("/api/score/fraud"), json={**payment["data"], "amount": "x"})
    assert refused.status_code == 400 and "amount" in refused.json()["error"]
    assert requests.post(host.url("/api/score/recommendations"), json={}).status_code == 404
    user = next(e for e in events if e["type"] == "app.interaction")["data"]["user_id"]
    items = requests.get(host.url(f"/api/recommend/{user}"), params={"k": "5"}, timeout=30)
    assert items.status_code == 200 and len(items.json()["items"]) == 5
    assert items.json()["source"] == "cooccurrence"
    stranger = requests.get(host.url("/api/recommend/nobody-at-all"), timeout=30).json()
    assert stranger["source"] == "popularity" and len(stranger["items"]) == 10

    # Batch inference: silver payments scored by the champion into gold/fraud_scores.
    batch = requests.post(host.url("/api/models/fraud/batch-scores"), json={}, timeout=30)
    result = _durable(host, batch, 120)
    assert result["version"] == 1 and result["source"] == "silver.payment_transaction", result
    silver = DeltaTable(str(data_dir / "lake" / "silver" / "payment_transaction"))
    assert result["rows_scored"] == silver.count() and result["rows_skipped"] == 0
    gold = DeltaTable(str(data_dir / "lake" / "gold" / "fraud_scores")).to_pyarrow_table()
    assert gold.num_rows == result["rows_scored"] and set(gold["model_version"].to_pylist()) == {1}
    refused = requests.post(
        host.url("/api/models/fraud/batch-scores"), json={"source": "bronze.x"}, timeout=30
    )
    assert refused.status_code == 400 and "source" in refused.json()["error"]
    missing = requests.post(
        host.url("/api/models/maintenance/batch-scores"), json={"version": 7}, timeout=30
    )
    assert "error" in _durable(host, missing, 60) and missing.status_code == 202
    assert requests.post(host.url("/api/models/recommendations/batch-scores")).status_code == 404

    # No card number posted (to the events or to the score) is at rest: not in the documents
    # (features, alerts, registry, audit), the model files, the lake or the event log.
    cards = {e["data"]["card_number"] for e in events if "card_number" in e.get("data", {})}
    at_rest = b"".join(path.read_bytes() for path in data_dir.rglob("*") if path.is_file())
    assert cards and not [card for card in cards if card.encode() in at_rest]
