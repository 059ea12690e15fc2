"""A poison event on the hub (written by a producer that skips the intake's checks) is
dead-lettered, and its partition moves on: the events behind it land."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedded.eventlog.log import EventLog, event_log_path
from tests.conftest import StartDevhost
from tests.eventdata import encoded, telemetry
from tests.integration.ingest_helpers import bronze_rows, eventually, start_platform

pytestmark = pytest.mark.integration


def test_a_poison_event_is_dead_lettered_and_its_partition_moves_on(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    poison = telemetry(1)
    poison["time"] = "0001-01-01T00:00:00+14:00"  # its UTC date is before year 1
    before = [telemetry(n) for n in range(2, 5)]
    with EventLog(event_log_path(data_dir)) as log:  # one device: one partition, in order
        log.append_batch("events", [(encoded(e), "dev-1", None) for e in [poison, *before]])
    app = start_platform(start_devhost, data_dir)
    lake = str(data_dir / "lake")
    eventually(lambda: len(bronze_rows(lake, "deadletter")) == 1, what="the poison dead-lettered")
    [dead] = bronze_rows(lake, "deadletter")
    assert (dead["event_id"], dead["reason"], dead["sequence_number"]) == (
        poison["id"],
        "out_of_range",
        0,
    )
    after = [telemetry(n, device_id="dev-1") for n in range(5, 8)]
    response = app.post(after)
    assert response.status_code == 202 and response.json()["accepted"] == 3
    expected = sorted(e["id"] for e in [*before, *after])
    eventually(
        lambda: sorted(r["event_id"] for r in bronze_rows(lake, "iot_telemetry")) == expected,
        what="the events behind the poison in bronze",
    )
    assert "OverflowError" not in app.host.output()
