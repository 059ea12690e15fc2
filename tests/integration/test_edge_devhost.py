"""Edge scoring end to end: the maintenance model trained over HTTP, telemetry scored by the
stream as it lands, then the ONNX file downloaded and the bronze telemetry exported to a CSV
and scored by `edge/score_telemetry.py` alone (isolated Python): the same scores as bronze's
`score` column."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest
import requests
from deltalake import DeltaTable

from benchmarks.traffic import Traffic, simulated_clock
from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT
from tests.integration.ingest_helpers import eventually
from tests.integration.test_models_devhost import QUIET, _durable, _history, _landed, _post

pytestmark = pytest.mark.integration

COLUMNS = ("temperature_c", "vibration_mm_s", "pressure_kpa", "rpm")


def test_the_edge_scores_the_bronze_telemetry_as_the_stream_did(
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
    started = requests.post(host.url("/api/models/maintenance/train"), json={}, timeout=30)
    threshold = _durable(host, started, 120)["metrics"]["threshold"]

    # Live readings after the history's, so each device's arrive in time order (a reading
    # that arrives after a later one is scored online without it: see edge/README.md).
    last = max(dt.datetime.fromisoformat(e["time"]) for e in events)
    live = Traffic(11, label_delay_scale=0.1).events(
        simulated_clock(last + dt.timedelta(seconds=1), 10.0)
    )
    telemetry = data_dir / "lake" / "bronze" / "iot_telemetry"

    def scored() -> bool:
        _post(host, list(itertools.islice(live, 300)))
        rows = DeltaTable(str(telemetry)).to_pyarrow_table(columns=["score"])
        return bool(rows.filter(pc.is_valid(rows["score"])).num_rows)

    eventually(scored, 60, "telemetry scored by the maintenance champion")

    onnx = requests.get(host.url("/api/models/maintenance/versions/1/onnx"), timeout=30)
    assert onnx.status_code == 200
    (tmp_path / "maintenance-v1.onnx").write_bytes(onnx.content)
    bronze = DeltaTable(str(telemetry)).to_pyarrow_table().to_pylist()
    bronze.sort(key=lambda r: (r["partition"], r["sequence_number"]))  # each device's arrivals
    with (tmp_path / "telemetry.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "time", "device_id", *COLUMNS])
        for r in bronze:
            values = [repr(r[name]) for name in COLUMNS]
            writer.writerow([r["event_id"], r["event_time"].isoformat(), r["device_id"], *values])
    done = subprocess.run(
        [sys.executable, "-I", str(PROJECT_ROOT / "edge" / "score_telemetry.py")]
        + ["maintenance-v1.onnx", "telemetry.csv", "-o", "scores.csv"]
        + ["--threshold", repr(threshold)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with (tmp_path / "scores.csv").open(newline="") as f:
        edge = {row["id"]: row for row in csv.DictReader(f)}
    served = [r for r in bronze if r["score"] is not None]
    assert served and len(edge) == len(bronze)
    assert max(abs(float(edge[r["event_id"]]["score"]) - r["score"]) for r in served) <= 1e-6
    for r in served:
        assert edge[r["event_id"]]["decision"] == ("flag" if r["score"] >= threshold else "pass")
