"""A model's monitoring run over the lake: its champion's training rows against a recent window
of bronze, with realised performance on the last window whose labels matured. A steady window
calls for no retraining and a shifted one does; the current window's features are those
training computes; the stream's scores are kept where the champion gave them."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.traffic import Traffic, simulated_clock
from embedded.documents.store import DocumentStore
from shared.features.base import epoch_seconds
from shared.features.offline import point_in_time
from shared.models import fraud
from shared.models.artifacts import LocalArtifacts
from shared.models.champions import load_version
from shared.models.datasets import MissingData, Reads, bronze_rows
from shared.models.registry import MODELS_CONTAINER, ModelRegistry
from shared.models.service import Models
from shared.models.training import ModelTraining, TrainingRequest
from shared.monitoring import lake_monitor, lake_windows
from shared.monitoring.lake_monitor import BadWindow, LakeMonitor, NotMonitored, monitor_lake
from shared.monitoring.lake_windows import (
    MONITORABLE,
    REFERENCE_ROWS,
    current_window,
    labelled_window,
    reference_window,
)
from shared.monitoring.performance import realised_performance
from shared.monitoring.report import MonitoringReport
from shared.pipeline.lake import Lake
from tests.lakedata import land
from tests.modeldata import bronze_row, refresh

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)  # training's data ends here
HOUR = dt.timedelta(hours=1)
WINDOW = 2 * HOUR  # a window of the test's traffic holds over 1,000 rows of each model
STEADY, SHIFTED = T0 + WINDOW, T0 + 2 * WINDOW  # the ends of the two windows after training
MATURITY_H = 12.0  # fraud's labels come within 17 h at this label delay scale


def shifted(row: dict[str, Any]) -> dict[str, Any]:
    """The recent window's change: amounts three times larger, machines 10 degrees hotter."""
    if row["event_type"] == "payment.transaction":
        return {**row, "amount": row["amount"] * 3}
    if row["event_type"] == "iot.telemetry":
        return {**row, "temperature_c": row["temperature_c"] + 10}
    return row


@dataclass(frozen=True)
class Simulated:
    lake: Lake
    models: Models
    after: dict[str, list[dict[str, Any]]]  # bronze rows landed after training, by type


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    """2.5 days of traffic to T0, the models trained on it; then one stream of traffic goes on:
    a steady window to STEADY, and a shifted one to SHIFTED."""
    root = tmp_path_factory.mktemp("monitoring")
    traffic = Traffic(5, label_delay_scale=0.05, fraud_rate=0.04)
    clock = simulated_clock(T0 - dt.timedelta(days=2.5), 0.7)
    history: dict[str, list[dict[str, Any]]] = {}
    after: dict[str, list[dict[str, Any]]] = {}
    for simulated in traffic.events(itertools.takewhile(lambda m: m < SHIFTED, clock)):
        row = bronze_row(simulated)
        moment = row["event_time"]
        if moment >= STEADY:
            row = shifted(row)
        (history if moment < T0 else after).setdefault(row["event_type"], []).append(row)
    for event_type, rows in history.items():
        land(root / "lake", event_type, rows)
    refresh(root / "lake")
    lake = Lake(str(root / "lake"))
    registry = ModelRegistry(DocumentStore(root / "models.sqlite3").container(MODELS_CONTAINER))
    artifacts = LocalArtifacts(root / "models")
    models = Models(registry, artifacts, ModelTraining(lake, registry, artifacts))
    models.training.train(TrainingRequest("fraud", label_maturity_hours=MATURITY_H))
    models.training.train(TrainingRequest("maintenance"))
    for event_type, rows in after.items():
        land(root / "lake", event_type, rows)
    refresh(root / "lake", "run-2")
    return Simulated(lake, models, after)


@pytest.fixture(scope="module")
def monitor(simulated: Simulated) -> LakeMonitor:
    return LakeMonitor(simulated.lake, simulated.models)


@pytest.fixture(scope="module")
def reports(monitor: LakeMonitor) -> Callable[[str, dt.datetime], MonitoringReport]:
    """A model's report over the window ending at a time, run once per module."""
    made: dict[tuple[str, dt.datetime], MonitoringReport] = {}

    def report(name: str, end: dt.datetime) -> MonitoringReport:
        if (name, end) not in made:
            found = monitor.run(name, end, WINDOW)
            assert found is not None
            made[name, end] = found
        return made[name, end]

    return report


def in_window(rows: list[dict[str, Any]], end: dt.datetime) -> int:
    return sum(end - WINDOW <= row["event_time"] < end for row in rows)


@pytest.mark.parametrize("name", ["fraud", "maintenance"])
def test_a_steady_window_calls_for_no_retraining(
    reports: Callable[[str, dt.datetime], MonitoringReport], simulated: Simulated, name: str
) -> None:
    report = reports(name, STEADY)
    assert report.action != "retrain", report.reasons
    assert not report.dataset_drift and report.model_version == 1
    assert report.prediction is not None and report.prediction.verdict != "act"
    event_type = MONITORABLE[name].features.event_type
    assert report.current.rows == in_window(simulated.after[event_type], STEADY)
    assert (report.current.start, report.current.end) == (STEADY - WINDOW, STEADY)
    assert 1_000 < report.reference.rows <= REFERENCE_ROWS
    assert report.reference.end is not None and report.reference.end < T0


@pytest.mark.parametrize(("name", "moved"), [("fraud", "amount"), ("maintenance", "temperature_c")])
def test_a_shifted_window_calls_for_retraining(
    reports: Callable[[str, dt.datetime], MonitoringReport], name: str, moved: str
) -> None:
    report = reports(name, SHIFTED)
    assert report.action == "retrain"
    assert any(moved in reason and "PSI >= 0.25" in reason for reason in report.reasons)
    assert report.prediction is not None and report.prediction.verdict == "act"
    drift = {feature.name: feature for feature in report.features}
    assert drift[moved].verdict == "act"


def test_the_current_window_has_the_features_training_computes(simulated: Simulated) -> None:
    """Each row's entity is folded over its whole history, as training folds it: the same
    features as a fold over all of bronze."""
    spec = MONITORABLE["fraud"]
    champion = load_version(simulated.models, "fraud", 1)
    window = current_window(simulated.lake, spec, champion, STEADY - WINDOW, STEADY)
    rows = bronze_rows(simulated.lake, Reads(), spec.features.event_type, spec.columns)
    begin, end = epoch_seconds(STEADY - WINDOW), epoch_seconds(STEADY)
    everything = [
        found for row, found in point_in_time(spec.features, rows) if begin <= row["t"] < end
    ]
    assert window.rows == len(everything) > 1_000
    for name in spec.features.numeric:
        expected = np.asarray([found[name] for found in everything], dtype=np.float32)
        assert np.array_equal(window.columns[name], expected.astype(np.float64)), name


def test_the_reference_is_the_training_rows_past_the_warmup(simulated: Simulated) -> None:
    """Bronze as of the version's training data, folded as training folds it, from a day after
    the lake's first payment (every window full) to the label maturity before its last; a
    sample of them when there are more than the limit, scored by the champion."""
    spec = MONITORABLE["fraud"]
    champion = load_version(simulated.models, "fraud", 1)
    version = simulated.models.registry.get_version("fraud", 1)
    maturity = dt.timedelta(hours=MATURITY_H)
    rows = bronze_rows(
        simulated.lake, Reads(pinned=version.training_data), spec.features.event_type, spec.columns
    )
    begin, end = rows[0]["t"] + 86_400, rows[-1]["t"] - MATURITY_H * 3600
    expected = [
        found for row, found in point_in_time(spec.features, rows) if begin <= row["t"] <= end
    ]
    full = reference_window(simulated.lake, spec, champion, version.training_data, maturity)
    assert full.rows == len(expected) and full.end is not None and full.end < T0
    amounts = np.asarray([found["amount_vs_usual"] for found in expected], dtype=np.float32)
    assert np.array_equal(full.columns["amount_vs_usual"], amounts.astype(np.float64))
    sample = reference_window(simulated.lake, spec, champion, version.training_data, maturity, 500)
    assert sample.rows == 500 and sample.scores is not None
    assert set(sample.columns["amount_vs_usual"]) <= set(full.columns["amount_vs_usual"])
    matrix = np.column_stack([sample.columns[name] for name in champion.features])
    assert np.allclose(sample.scores, champion.probabilities(matrix.astype(np.float32)))


def test_realised_performance_is_that_of_the_last_matured_window(
    reports: Callable[[str, dt.datetime], MonitoringReport], simulated: Simulated
) -> None:
    """The rows of the last window before the maturity, as `fraud.labelled` labels them over
    all of bronze, scored by the champion."""
    report = reports("fraud", STEADY)
    maturity = dt.timedelta(hours=MATURITY_H)
    chargebacks = [
        row["event_time"]
        for row in simulated.after["payment.chargeback"]
        if row["event_time"] <= STEADY
    ]
    known_until = epoch_seconds(max(chargebacks) - maturity)
    x, y, _ = fraud.labelled(simulated.lake, Reads(), maturity)
    rows = bronze_rows(simulated.lake, Reads(), "payment.transaction", fraud.COLUMNS)
    times = np.asarray([row["t"] for row in rows[: len(y)]])
    kept = (times >= known_until - WINDOW.total_seconds()) & (times <= known_until)
    champion = load_version(simulated.models, "fraud", 1)
    expected = realised_performance(
        champion.probabilities(x[kept]),
        y[kept],
        champion.threshold,
        simulated.models.registry.get_version("fraud", 1).metrics["pr_auc"],
    )
    assert report.performance is not None and report.performance.enough_labels
    assert report.performance.rows == expected.rows == int(kept.sum())
    assert report.performance.positives == expected.positives
    assert report.performance.pr_auc == pytest.approx(expected.pr_auc, abs=1e-9)
    assert not report.performance.dropped


def test_the_streams_scores_of_the_champion_are_kept(simulated: Simulated) -> None:
    """Rows the champion's version scored keep the stream's score; rows another version scored,
    or none did, are scored by the champion."""
    start = SHIFTED + HOUR
    copies = [
        {
            **row,
            "event_id": f"late-{index}",
            "event_time": row["event_time"] + (start - T0),
            "event_date": (row["event_time"] + (start - T0)).date(),
            "score": 0.123 if index % 3 == 0 else 0.9 if index % 3 == 1 else None,
            "model_name": "fraud" if index % 3 < 2 else None,
            "model_version": 1 if index % 3 == 0 else 7 if index % 3 == 1 else None,
        }
        for index, row in enumerate(simulated.after["payment.transaction"][:300])
    ]
    land(simulated.lake.root, "payment.transaction", copies)
    champion = load_version(simulated.models, "fraud", 1)
    end = max(row["event_time"] for row in copies) + dt.timedelta(seconds=1)
    window = current_window(simulated.lake, MONITORABLE["fraud"], champion, start, end)
    assert window.rows == len(copies) and window.scores is not None
    ordered = sorted(range(len(copies)), key=lambda i: (copies[i]["event_time"], f"late-{i}"))
    scores = dict(zip(ordered, window.scores, strict=True))
    assert all(scores[i] == 0.123 for i in range(0, len(copies), 3))
    matrix = np.column_stack([window.columns[name] for name in champion.features])
    recomputed = champion.probabilities(matrix.astype(np.float32))
    by_row = dict(zip(ordered, recomputed, strict=True))
    assert all(scores[i] == pytest.approx(by_row[i]) for i in range(len(copies)) if i % 3)


def test_the_reference_is_read_once_per_champion(
    simulated: Simulated, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    read = lake_windows.reference_window

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append("read")
        return read(*args, **kwargs)

    monkeypatch.setattr(lake_monitor, "reference_window", counted)
    monitor = LakeMonitor(simulated.lake, simulated.models)
    first = monitor.run("maintenance", STEADY, WINDOW)
    again = monitor.run("maintenance", STEADY, WINDOW)
    assert calls == ["read"] and first == again


def test_reports_hold_no_entity_keys(
    reports: Callable[[str, dt.datetime], MonitoringReport], simulated: Simulated
) -> None:
    text = (
        reports("fraud", SHIFTED).to_json().decode()
        + reports("maintenance", SHIFTED).to_json().decode()
    )
    keys = {
        str(row[column])
        for rows in simulated.after.values()
        for row in rows
        for column in ("account_id", "device_id", "transaction_id", "merchant_id")
        if column in row
    }
    assert keys and not any(key in text for key in keys)


def test_a_model_without_a_champion_has_no_report(simulated: Simulated, tmp_path: Path) -> None:
    registry = ModelRegistry(DocumentStore(tmp_path / "models.sqlite3").container(MODELS_CONTAINER))
    artifacts = LocalArtifacts(tmp_path / "models")
    models = Models(registry, artifacts, ModelTraining(simulated.lake, registry, artifacts))
    assert monitor_lake(simulated.lake, models, "fraud", STEADY) is None


@pytest.mark.parametrize("name", ["recommendations", "nope"])
def test_only_the_classifiers_are_monitored(monitor: LakeMonitor, name: str) -> None:
    with pytest.raises(NotMonitored, match="fraud, maintenance"):
        monitor.run(name, STEADY)


def test_a_run_needs_an_aware_time_and_a_window(monitor: LakeMonitor) -> None:
    with pytest.raises(BadWindow):
        monitor.run("fraud", STEADY.replace(tzinfo=None))
    with pytest.raises(BadWindow):
        monitor.run("fraud", STEADY, dt.timedelta(0))


def test_a_lake_without_the_tables_is_missing_data(simulated: Simulated, tmp_path: Path) -> None:
    empty = Lake(str(tmp_path / "lake"))
    with pytest.raises(MissingData, match="bronze"):
        LakeMonitor(empty, simulated.models).run("maintenance", STEADY)


def test_no_labels_yet_means_no_performance(simulated: Simulated) -> None:
    champion = load_version(simulated.models, "maintenance", 1)
    before = T0 - dt.timedelta(days=3)
    spec = MONITORABLE["maintenance"]
    assert labelled_window(simulated.lake, spec, champion, spec.maturity, before, WINDOW) is None
