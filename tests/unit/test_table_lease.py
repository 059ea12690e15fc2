"""Maintenance leases: one job per table at a time, across processes, freed when a holder dies."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from deltalake import DeltaTable

from shared.lakehouse.bronze import BronzeWriter
from shared.lakehouse.lease import TableBusy, TableLeases
from tests.devhost_process import PROJECT_ROOT
from tests.unit.test_bronze_writer import SCHEMA, landed_numbers, rows_after

pytestmark = pytest.mark.unit


def test_a_held_lease_makes_another_job_busy_until_released(tmp_path: Path) -> None:
    first, second = TableLeases(str(tmp_path)), TableLeases(str(tmp_path))
    with first.hold("silver", "t"):
        with pytest.raises(TableBusy, match=f"pid {os.getpid()} job"):
            with second.hold("silver", "t"):
                pass
        with pytest.raises(TableBusy):  # another job of the same process, too
            with first.hold("silver", "t"):
                pass
        with second.hold("silver", "other"):  # tables are independent
            pass
    with second.hold("silver", "t"):
        pass


def test_an_expired_lease_is_taken_over(tmp_path: Path) -> None:
    now = [1_000.0]
    leases = TableLeases(str(tmp_path), ttl_s=60, clock=lambda: now[0])
    uri = leases.uri("silver", "t")
    leases._acquire("silver/t", uri, "crashed job")  # and never released
    with pytest.raises(TableBusy, match="crashed job"):
        leases._acquire("silver/t", uri, "next job")
    now[0] += 61
    with leases.hold("silver", "t"):
        with pytest.raises(TableBusy, match="job"):
            leases._acquire("silver/t", uri, "crashed job")


def test_a_running_job_renews_its_lease_past_the_ttl(tmp_path: Path) -> None:
    leases = TableLeases(str(tmp_path), ttl_s=1.2)  # renewed every 0.4 s
    with leases.hold("bronze", "t"):
        threading.Event().wait(2.5)  # a job longer than the ttl
        with pytest.raises(TableBusy):
            with TableLeases(str(tmp_path)).hold("bronze", "t"):
                pass


def test_racing_jobs_get_the_lease_once(tmp_path: Path) -> None:
    leases = [TableLeases(str(tmp_path)) for _ in range(4)]
    start = threading.Barrier(len(leases))
    held = threading.Event()
    outcomes: list[str] = []

    def take(lease: TableLeases) -> None:
        start.wait(10)
        try:
            with lease.hold("bronze", "t"):
                outcomes.append("held")
                held.wait(60)  # keep it until every other job has tried, however slow
        except TableBusy:
            outcomes.append("busy")
            if outcomes.count("busy") == len(leases) - 1:
                held.set()

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["busy"] * (len(leases) - 1) + ["held"]


COMPACT = """
import sys, time
from pathlib import Path
from shared.lakehouse.bronze import BronzeWriter
root, go = sys.argv[1], Path(sys.argv[2])
writer = BronzeWriter(root, direct_log=True)
while not go.exists():
    time.sleep(0.005)
print(writer.compact("t"))
"""


def test_two_processes_compacting_at_once_keep_every_row_once(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path / "lake"), direct_log=True)
    for batch in range(30):
        writer.land("t", SCHEMA, "p0", batch, rows_after([batch]))
    go = tmp_path / "go"
    command = [sys.executable, "-c", COMPACT, str(tmp_path / "lake"), str(go)]
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    jobs = [
        subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    go.touch()
    outputs = [job.communicate(timeout=60)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    assert landed_numbers(writer) == list(range(30))
    assert len(DeltaTable(writer.uri("t")).file_uris()) == 1
