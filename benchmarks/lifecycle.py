"""The model lifecycle: `python -m benchmarks lifecycle` prints JSON lines, each beside its
baseline.

A devhost on a fresh data dir takes `--days` of the simulator's labelled history (payment
amounts x8 in the second half, so that a challenger beats the stale champion), runs the
medallion pipeline and trains the fraud champion on the first half. Then, in the same run:

- `training_only_s` (the baseline): `POST /api/models/fraud/train` on all the history, the
  plain training orchestration (its version is registered, not promoted);
- `retraining_s`: `POST /api/models/fraud/retrain`, approved as soon as it waits, its canary
  steps (`--step-s` each) over live traffic posted meanwhile, to the promotion; split by step
  from the orchestration's history: `train_s`, `gate_s`, `approval_wait_s` (the benchmark
  answers at once), `canary_<p>_s` (each step's wait and check), `promote_s`.

The canary's score-PSI limit is raised for the run: against a champion that has not seen the
drift, a good challenger's scores differ by design (README, "The model lifecycle").
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from benchmarks.lifecycle_data import LiveTraffic, drifted_history
from benchmarks.report import Report

REPORT = Report("lifecycle", digits=2)
emit = REPORT.emit
progress = REPORT.progress
WEBHOOKS = "/runtime/webhooks/durabletask"
MATURITY = {"label_maturity_hours": 8}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks lifecycle", description=__doc__)
    parser.add_argument("--days", type=float, default=2.0, help="days of history (default 2)")
    parser.add_argument("--rate", type=float, default=1.0, help="events per simulated second")
    parser.add_argument("--step-s", type=float, default=15.0, help="a canary step's wait")
    args = parser.parse_args()
    if not 0.5 <= args.days <= 30 or not 0.1 <= args.rate <= 20 or not 1 <= args.step_s <= 900:
        parser.error("--days is 0.5 to 30, --rate 0.1 to 20, --step-s 1 to 900")
    return args


def _status(host: Any, instance: str, **params: str) -> dict[str, Any]:
    found: dict[str, Any] = requests.get(
        host.url(f"{WEBHOOKS}/instances/{instance}"), params=params, timeout=30
    ).json()
    return found


def _wait(host: Any, instance: str, timeout_s: float, step: str | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _status(host, instance)
        if step is None and found["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return found
        if step is not None and (found.get("customStatus") or {}).get("step") == step:
            return found
        if found["runtimeStatus"] in ("Failed", "Terminated"):
            raise RuntimeError(f"{instance} ended: {found}")
        time.sleep(0.1)
    raise TimeoutError(f"{instance} did not get there in {timeout_s} s")


def _durable(host: Any, response: requests.Response, timeout_s: float) -> dict[str, Any]:
    if response.status_code != 202:
        raise RuntimeError(f"{response.status_code}: {response.text}")
    done = _wait(host, response.json()["id"], timeout_s)
    if done["runtimeStatus"] != "Completed":
        raise RuntimeError(f"{done}")
    output: dict[str, Any] = done["output"]
    return output


def _landed(data_dir: Path, counts: Counter[str], timeout_s: float = 300) -> None:
    from deltalake import DeltaTable

    from shared.pipeline.lake import table_name

    deadline = time.monotonic() + timeout_s
    for event_type, count in counts.items():
        path = data_dir / "lake" / "bronze" / table_name(event_type)
        while not (path / "_delta_log").exists() or DeltaTable(str(path)).count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{event_type} did not land")
            time.sleep(0.2)


def _post(host: Any, events: list[dict[str, Any]]) -> None:
    import json

    for start in range(0, len(events), 1000):
        answer = requests.post(
            host.url("/api/events"),
            data=json.dumps(events[start : start + 1000]),
            headers={"content-type": "application/cloudevents-batch+json"},
            timeout=60,
        )
        answer.raise_for_status()


def prepare(host: Any, data_dir: Path, days: float, rate: float) -> None:
    landed: Counter[str] = Counter()
    for part, then_train in zip(drifted_history(days, rate), (True, False), strict=True):
        progress(f"posting {len(part)} events")
        _post(host, part)
        landed += Counter(e["type"] for e in part)
        _landed(data_dir, landed)
        run = requests.post(host.url("/api/pipelines/medallion/runs"), timeout=30)
        _durable(host, run, 600)
        if then_train:
            trained = requests.post(host.url("/api/models/fraud/train"), json=MATURITY)
            _durable(host, trained, 600)


def _seconds(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def split_by_step(history: list[dict[str, Any]]) -> dict[str, float]:
    """Each step's seconds, from the orchestration's history events."""
    steps: dict[str, float] = {}
    started = history[0]["Timestamp"]
    waiting_since = None
    share_done: tuple[int, str] | None = None
    for event in history:
        name, result = event.get("FunctionName"), event.get("Result")
        if event["EventType"] == "TaskCompleted" and name == "model_train":
            steps["train_s"] = _seconds(event["ScheduledTime"], event["Timestamp"])
        elif event["EventType"] == "TaskCompleted" and name == "model_gate":
            steps["gate_s"] = _seconds(event["ScheduledTime"], event["Timestamp"])
        elif event["EventType"] == "TaskCompleted" and name == "model_rollout_move":
            stage = str((result or {}).get("stage", ""))
            if stage == "awaiting_approval":
                waiting_since = event["Timestamp"]
            elif stage.startswith("canary "):
                share_done = (int(stage.removeprefix("canary ").rstrip("%")), event["Timestamp"])
            elif stage == "promote":
                steps["promote_s"] = _seconds(event["ScheduledTime"], event["Timestamp"])
        elif event["EventType"] == "EventRaised" and waiting_since is not None:
            steps["approval_wait_s"] = _seconds(waiting_since, event["Timestamp"])
        elif event["EventType"] == "TaskCompleted" and name == "model_canary_check" and share_done:
            percent, since = share_done
            steps[f"canary_{percent}_s"] = _seconds(since, event["Timestamp"])
        elif event["EventType"] == "ExecutionCompleted":
            steps["retraining_s"] = _seconds(started, event["Timestamp"])
    return steps


def main() -> int:
    args = parse_args()
    from tests.devhost_process import PROJECT_ROOT, DevhostProcess

    with tempfile.TemporaryDirectory(prefix="lifecycle-") as folder:
        data_dir = Path(folder) / "platform"
        env = {
            "PLATFORM_DATA_DIR": str(data_dir),
            "PIPELINE_POLL_FIRST_S": "0.2",
            "PIPELINE_POLL_MAX_S": "0.5",
            "AzureWebJobs.hourly_pipeline_run.Disabled": "true",
            "AzureWebJobs.nightly_table_maintenance.Disabled": "true",
            "AzureWebJobs.train_models.Disabled": "true",
            "AzureWebJobs.monitor_models.Disabled": "true",
            "MODEL_REFRESH_S": "0.5",
            "MODEL_CANARY_STEP_S": str(args.step_s),
            "MODEL_CANARY_MIN_ROWS": "20",
            "MODEL_CANARY_MAX_SCORE_PSI": "50",
        }
        host = DevhostProcess(PROJECT_ROOT, data_dir, env=env)
        try:
            host.wait_ready(120)
            prepare(host, data_dir, args.days, args.rate)
            progress("the baseline: a plain training")
            began = time.monotonic()
            _durable(host, requests.post(host.url("/api/models/fraud/train"), json=MATURITY), 600)
            baseline = time.monotonic() - began
            progress("a retraining, approved at once, through its canary")
            started = requests.post(host.url("/api/models/fraud/retrain"), json=MATURITY)
            instance = started.json()["id"]
            _wait(host, instance, 600, step="awaiting_approval")
            requests.post(
                host.url(f"/api/models/fraud/approvals/{instance}"), json={"decision": "approve"}
            )
            with LiveTraffic(host.url):
                done = _wait(host, instance, 600 + 10 * args.step_s)
            if (done.get("output") or {}).get("step") != "promoted":
                progress(f"the retraining ended {done.get('output')}")
            history = _status(host, instance, showHistory="true", showHistoryOutput="true")
            steps = split_by_step(history["historyEvents"])
        finally:
            host.stop()
    emit("training_only_s", baseline, "s", note="baseline: the plain training orchestration")
    for name, seconds in steps.items():
        emit(name, seconds, "s", baseline_training_only_s=round(baseline, 2))
    return 0
