"""A monitoring run: the report's figures and action for each kind of finding, its JSON, windows
read from Arrow, sampling of large windows, and the models' declarations."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from shared.features.payments import PaymentFeatures
from shared.features.sets import FEATURE_SETS
from shared.features.telemetry import TelemetryFeatures
from shared.monitoring.drift import FAMILY_ALPHA
from shared.monitoring.monitor import (
    SAMPLE_ROWS,
    Labelled,
    MalformedWindow,
    Window,
    labelled_from_arrow,
    monitor,
    window_from_arrow,
)
from shared.monitoring.monitored import (
    MonitoredModel,
    UnknownFeature,
    monitored_model,
)
from shared.monitoring.report import MonitoringReport

pytestmark = pytest.mark.unit

FRAUD = monitored_model("fraud", PaymentFeatures(), 0.5, expected_pr_auc=0.8, version=3)
ROWS = 5_000


def window(rows: int, seed: int, shift: dict[str, float] | None = None) -> Window:
    """Fraud features from one distribution (numeric ones normal around 100, indicators at
    30%), with `shift` added to the named features, and scores."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name in FRAUD.features:
        if name in FRAUD.categorical:
            columns[name] = (rng.random(rows) < 0.3).astype(np.float64)
        else:
            columns[name] = rng.normal(100.0, 10.0, rows)
        columns[name] += (shift or {}).get(name, 0.0)
    return Window(columns, rng.beta(1, 9, rows))


def test_windows_from_one_distribution_call_for_nothing() -> None:
    report = monitor(FRAUD, window(ROWS, 1), window(ROWS, 2))
    assert (report.action, report.reasons) == ("none", ())
    assert (report.model, report.model_version) == ("fraud", 3)
    assert [f.name for f in report.features] == list(FRAUD.features)
    assert {f.kind for f in report.features if f.name in FRAUD.categorical} == {"categorical"}
    assert report.prediction is not None and report.prediction.verdict == "none"
    assert report.ks_alpha == FAMILY_ALPHA / 11  # 10 numeric features and the scores
    assert not report.dataset_drift and report.drifting_features == 0
    assert report.performance is None


def test_one_shifted_feature_is_named() -> None:
    report = monitor(FRAUD, window(ROWS, 1), window(ROWS, 2, {"amount": 5.0}))
    assert report.action in ("warn", "retrain") and report.drifting_features == 1
    assert any("amount (PSI" in reason for reason in report.reasons)
    assert not report.dataset_drift


def test_a_feature_at_the_act_level_retrains() -> None:
    report = monitor(FRAUD, window(ROWS, 1), window(ROWS, 2, {"count_1h": 20.0}))
    assert report.action == "retrain"
    assert report.reasons[0].startswith("feature drift, PSI >= 0.25: count_1h")


def test_half_the_features_drifting_is_dataset_drift() -> None:
    moved = {name: 20.0 for name in FRAUD.features[:7]}
    report = monitor(FRAUD, window(ROWS, 1), window(ROWS, 2, moved))
    assert report.dataset_drift and report.drifting_features == 7
    assert report.reasons[0] == "dataset drift: 7 of 14 features drift"


def test_prediction_drift() -> None:
    current = window(ROWS, 2)
    assert current.scores is not None
    moved = Window(current.columns, np.clip(current.scores + 0.3, 0, 1))
    report = monitor(FRAUD, window(ROWS, 1), moved)
    assert report.prediction is not None and report.prediction.verdict == "act"
    assert report.action == "retrain"
    assert any(reason.startswith("prediction drift") for reason in report.reasons)


def test_a_quality_regression_warns_without_retraining() -> None:
    current = window(ROWS, 2)
    amount = current.columns["amount"].copy()
    amount[:500] = np.nan
    amount[500:600] = -1.0  # below the contract's 0
    broken = Window({**current.columns, "amount": amount}, current.scores)
    report = monitor(FRAUD, window(ROWS, 1), broken)
    quality = {q.column: q for q in report.quality}
    assert (quality["amount"].nulls, quality["amount"].out_of_range) == (500, 100)
    assert quality["amount"].regressed and not quality["count_1h"].regressed
    assert report.action == "warn"
    assert any(r.startswith("input quality: amount has 10.0% nulls") for r in report.reasons)


def test_a_performance_drop_retrains() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(ROWS) < 0.1).astype(np.float64)
    noise = Labelled(rng.random(ROWS), labels)  # scores that know nothing: PR-AUC near 0.1
    report = monitor(FRAUD, window(ROWS, 1), window(ROWS, 2), noise)
    assert report.performance is not None and report.performance.dropped
    assert report.action == "retrain"
    assert report.reasons[0].startswith("performance drop: PR-AUC")


def test_an_all_null_current_window_warns_and_is_not_judged() -> None:
    current = Window({name: np.full(ROWS, np.nan) for name in FRAUD.features}, np.full(ROWS, 0.5))
    report = monitor(FRAUD, window(ROWS, 1), current)
    assert not any(f.judged for f in report.features) and report.drifting_features == 0
    assert all(q.regressed for q in report.quality)
    assert any(r.startswith("drift not judged") for r in report.reasons)
    # The scores collapsed (prediction drift), but retraining on broken inputs would learn
    # the breakage: it waits.
    assert report.action == "warn"
    assert report.reasons[0].startswith("prediction drift, PSI >= 0.25")
    assert report.reasons[-1] == "retraining waits until the inputs' quality is restored"


def test_the_report_is_json_without_nan_and_decodes_back() -> None:
    rng = np.random.default_rng(4)
    labelled = Labelled(rng.random(ROWS), (rng.random(ROWS) < 0.1).astype(np.float64))
    report = monitor(FRAUD, window(ROWS, 1), window(ROWS, 2, {"atm": 1.0}), labelled)
    encoded = report.to_json()
    assert "NaN" not in encoded.decode() and "Infinity" not in encoded.decode()
    assert json.loads(encoded)["action"] == report.action
    assert msgspec.json.decode(encoded, type=MonitoringReport) == report


def test_large_windows_are_sampled_the_same_way_every_run() -> None:
    reference, current = window(3 * SAMPLE_ROWS, 1), window(2 * SAMPLE_ROWS, 2)
    first, second = monitor(FRAUD, reference, current), monitor(FRAUD, reference, current)
    assert first == second
    assert (first.reference.rows, first.reference.sampled_rows) == (3 * SAMPLE_ROWS, SAMPLE_ROWS)
    assert {f.current_rows for f in first.features} == {SAMPLE_ROWS}
    assert {q.rows for q in first.quality} == {2 * SAMPLE_ROWS}  # quality counts every row


def test_windows_from_arrow_take_nulls_as_nan() -> None:
    names = ("amount", "count_10m")
    table = pa.table(
        {
            "amount": pa.array([1.5, None, 3.0]),
            "count_10m": pa.array([1, 2, None], pa.int64()),
            "score": pa.array([0.1, 0.2, 0.3]),
            "label": pa.array([0, 1, None], pa.int8()),
        }
    )
    read = window_from_arrow(table, names)
    assert read.rows == 3
    assert np.array_equal(read.columns["amount"], [1.5, np.nan, 3.0], equal_nan=True)
    assert np.array_equal(read.columns["count_10m"], [1.0, 2.0, np.nan], equal_nan=True)
    assert np.array_equal(labelled_from_arrow(table).labels, [0.0, 1.0, np.nan], equal_nan=True)
    with pytest.raises(MalformedWindow, match="no column 'rpm'"):
        window_from_arrow(table, ("rpm",))


def test_malformed_windows_are_refused() -> None:
    full = window(10, 1)
    lacking = Window({k: v for k, v in full.columns.items() if k != "atm"}, full.scores)
    with pytest.raises(MalformedWindow, match="lacks the features"):
        monitor(FRAUD, full, lacking)
    uneven = Window(full.columns, np.zeros(11))
    with pytest.raises(MalformedWindow, match="differ in length"):
        monitor(FRAUD, uneven, full)


def test_the_declarations_name_features_of_their_sets() -> None:
    for feature_set in FEATURE_SETS:
        assert feature_set.categorical <= set(feature_set.numeric)
    assert PaymentFeatures.categorical == {
        "first_time_country",
        "merchant_category_risk",
        "ecommerce",
        "atm",
    }
    with pytest.raises(UnknownFeature):
        MonitoredModel("m", ("a",), 0.5, categorical=frozenset({"b"}))


def test_models_get_the_bounds_of_their_contract_fields() -> None:
    assert set(FRAUD.bounds) == {"amount"}
    maintenance = monitored_model("maintenance", TelemetryFeatures(), 0.4)
    assert set(maintenance.bounds) == {"temperature_c", "vibration_mm_s", "pressure_kpa", "rpm"}
    assert maintenance.categorical == frozenset()
