"""The history of monitoring runs in gold/model_monitoring: a run round-trips, the newest come
first per model, a lake without runs has none, and appends made at once all land."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import msgspec
import numpy as np
import pytest
from deltalake import DeltaTable

from shared.features.payments import PaymentFeatures
from shared.monitoring.history import SCHEMA, MonitoringHistory, NaiveRunTime
from shared.monitoring.monitor import Labelled, Window, monitor
from shared.monitoring.monitored import monitored_model
from shared.monitoring.report import MonitoringReport
from shared.pipeline.lake import Lake

pytestmark = pytest.mark.unit

RUN_AT = dt.datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=dt.UTC)
FEATURES = PaymentFeatures()


def window(seed: int, shift: float, end: dt.datetime) -> Window:
    """1,500 rows of the fraud features around 100 (`shift` moves the amounts), scored."""
    rng = np.random.default_rng(seed)
    columns = {name: rng.normal(100, 10, 1_500) for name in FEATURES.numeric}
    columns["amount"] = columns["amount"] + shift
    return Window(columns, rng.uniform(0, 1, 1_500), end - dt.timedelta(hours=1), end)


@pytest.fixture(scope="module")
def reports() -> dict[str, MonitoringReport]:
    """A report of each action but warn: a steady window and one whose amounts moved."""
    model = monitored_model("fraud", FEATURES, 0.5, expected_pr_auc=0.8, version=3)
    labels = np.r_[np.ones(60), np.zeros(440)]
    labelled = Labelled(np.r_[np.full(60, 0.9), np.full(440, 0.1)], labels)
    reference = window(1, 0.0, RUN_AT - dt.timedelta(days=3))
    return {
        "none": monitor(model, reference, window(2, 0.0, RUN_AT), labelled),
        "retrain": monitor(model, reference, window(3, 30.0, RUN_AT)),
    }


@pytest.fixture
def history(tmp_path: Path) -> MonitoringHistory:
    return MonitoringHistory(Lake(str(tmp_path / "lake")))


def test_a_run_round_trips(
    history: MonitoringHistory, reports: dict[str, MonitoringReport]
) -> None:
    report = reports["retrain"]
    assert report.action == "retrain" and report.reasons
    history.append(report, RUN_AT, "timer")
    [run] = history.latest("fraud")
    assert (run.report, run.run_at, run.trigger) == (report, RUN_AT, "timer")
    table = DeltaTable(history.uri)
    assert table.metadata().partition_columns == ["model"]
    [row] = table.to_pyarrow_table().to_pylist()
    assert row == {
        "model": "fraud",
        "model_version": 3,
        "run_at": RUN_AT,
        "window_start": RUN_AT - dt.timedelta(hours=1),
        "window_end": RUN_AT,
        "action": "retrain",
        "dataset_drift": report.dataset_drift,
        "drifting_features": report.drifting_features,
        "reasons": list(report.reasons),
        "report": report.to_json().decode(),
        "trigger": "timer",
    }
    assert set(row) == set(SCHEMA.names)


def test_the_newest_runs_come_first_per_model(
    history: MonitoringHistory, reports: dict[str, MonitoringReport]
) -> None:
    hours = [3, 1, 4, 2]
    for hour in hours:
        history.append(reports["none"], RUN_AT + dt.timedelta(hours=hour), f"http-{hour}")
    other = msgspec.structs.replace(reports["retrain"], model="maintenance")
    history.append(other, RUN_AT + dt.timedelta(hours=9), "timer")
    newest = history.latest("fraud", limit=3)
    assert [run.trigger for run in newest] == ["http-4", "http-3", "http-2"]
    assert all(run.report == reports["none"] for run in newest)
    assert newest[0].report.performance is not None
    assert [run.report.model for run in history.latest("maintenance")] == ["maintenance"]
    assert history.latest("recommendations") == [] and history.latest("fraud", 0) == []


def test_a_lake_without_runs_has_none(history: MonitoringHistory) -> None:
    assert history.latest("fraud") == []


def test_runs_appended_at_once_all_land(
    history: MonitoringHistory, reports: dict[str, MonitoringReport]
) -> None:
    """Eight runs at once, the table's creation among them."""
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def append(index: int) -> None:
        start.wait()
        try:
            history.append(reports["none"], RUN_AT + dt.timedelta(minutes=index), f"run-{index}")
        except BaseException as error:  # reported below, with the others
            failures.append(error)

    threads = [threading.Thread(target=append, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(run.trigger for run in history.latest("fraud", 10)) == [
        f"run-{index}" for index in range(8)
    ]


def test_a_run_time_needs_a_time_zone(
    history: MonitoringHistory, reports: dict[str, MonitoringReport]
) -> None:
    with pytest.raises(NaiveRunTime):
        history.append(reports["none"], RUN_AT.replace(tzinfo=None), "timer")
    assert history.latest("fraud") == []
