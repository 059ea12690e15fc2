"""The predictive maintenance model: will this device fail within `HORIZON`? Gradient boosting
on the device's telemetry trends, learned from the failures maintenance reports.

A reading is labelled 1 when a failure of its device follows within the horizon; readings too
recent for their horizon to be known (`HORIZON` plus the reporting delay before the newest
report) are left out.
"""

from __future__ import annotations

import bisect
import datetime as dt

import numpy as np

from shared.features.offline import point_in_time
from shared.features.telemetry import TelemetryFeatures
from shared.models.boosting import classifier, fit
from shared.models.datasets import MissingData, Reads, bronze_rows
from shared.models.trained import TrainedModel
from shared.pipeline.lake import Lake

NAME = "maintenance"
HORIZON = dt.timedelta(hours=2)
REPORT_DELAY = dt.timedelta(hours=2)
FEATURES = TelemetryFeatures()
COLUMNS = ("device_id", "temperature_c", "vibration_mm_s", "pressure_kpa", "rpm")


def labelled(
    lake: Lake, reads: Reads, maturity: dt.timedelta | None = None
) -> tuple[np.ndarray, np.ndarray, dt.timedelta]:
    """The readings whose horizon is known (in event-time order): features, labels, and the
    wait before the newest report that made them known."""
    labels = reads.query(
        lake,
        "silver",
        "device_failure",
        "SELECT device_id, epoch_us(failed_at) AS failed_us, epoch_us(event_time) AS at_us "
        "FROM source",
    )
    if labels is None or labels.num_rows == 0:
        raise MissingData(
            "no device failures in silver yet: post labelled history "
            "(python -m benchmarks.simulate --backfill-days 14) and run the medallion pipeline"
        )
    failures: dict[str, list[float]] = {}
    for failure in labels.to_pylist():
        failures.setdefault(failure["device_id"], []).append(failure["failed_us"] / 1e6)
    for times in failures.values():
        times.sort()
    newest_report = max(labels.column("at_us").to_pylist()) / 1e6
    wait = HORIZON + REPORT_DELAY if maturity is None else max(maturity, HORIZON)
    known_until = newest_report - wait.total_seconds()
    horizon = HORIZON.total_seconds()
    x, y = [], []
    rows = bronze_rows(lake, reads, FEATURES.event_type, COLUMNS)
    for row, features in point_in_time(FEATURES, rows):
        if row["t"] > known_until:
            break
        times = failures.get(row["device_id"], [])
        after = bisect.bisect_right(times, row["t"])
        x.append([features[name] for name in FEATURES.numeric])
        y.append(1 if after < len(times) and times[after] <= row["t"] + horizon else 0)
    return np.asarray(x, dtype=np.float32), np.asarray(y), wait


def train(lake: Lake, reads: Reads, maturity: dt.timedelta | None = None) -> TrainedModel:
    x, y, wait = labelled(lake, reads, maturity)
    boosted = fit(x, y, FEATURES.numeric, NAME)
    params = {
        "label": f"a reported failure within {HORIZON.total_seconds() / 3600:g} h",
        "label_maturity_hours": f"{wait.total_seconds() / 3600:g}",
    }
    return classifier(NAME, boosted, FEATURES.numeric, params, x[-1] if len(x) else [])
