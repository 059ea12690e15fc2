"""Readers in other processes read bronze while it is landed and compacted, with no error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shared.lakehouse.bronze import BronzeWriter
from tests.devhost_process import PROJECT_ROOT
from tests.unit.test_bronze_writer import SCHEMA, rows_after

pytestmark = pytest.mark.unit

# What the README shows: `to_table(use_threads=False)`, as `to_pyarrow_table()` (threaded) can
# abort the reading process at exit (deltalake's filesystem under pyarrow's scanner threads).
READ_IN_A_LOOP = """
import json, sys, time
from shared.pipeline.lake import Lake
lake, until = Lake(sys.argv[1]), time.monotonic() + float(sys.argv[2])
counts, errors = [], []
while time.monotonic() < until:
    try:
        table = lake.open("bronze", "t")
        if table is not None:
            counts.append(table.to_pyarrow_dataset().to_table(use_threads=False).num_rows)
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}"[:200])
print(json.dumps({"counts": counts, "errors": errors}))
"""


def test_readers_in_a_loop_see_whole_growing_tables_while_bronze_is_written(
    tmp_path: Path,
) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    writer.land("t", SCHEMA, "p0", 0, rows_after([0]))
    # A log as long as a month of ingestion leaves (log clean-up keeps 30 days): listing it
    # takes long enough for commits to land meanwhile. Other names are ignored by readers.
    log_dir = tmp_path / "bronze" / "t" / "_delta_log"
    for index in range(30_000):
        (log_dir / f".history-{index}").touch()
    stop = threading.Event()
    landed = [1]

    def ingest_and_compact() -> None:
        number = 1
        while not stop.is_set():
            batch = list(range(number, number + 20))
            writer.land("t", SCHEMA, "p0", batch[-1], rows_after(batch))
            number += 20
            landed[0] = number
            if number % 400 == 1:
                writer.compact("t")

    ingestion = threading.Thread(target=ingest_and_compact)
    ingestion.start()
    try:
        reader = subprocess.run(
            [sys.executable, "-c", READ_IN_A_LOOP, str(tmp_path), "3"],
            capture_output=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            text=True,
            timeout=60,
        )
    finally:
        stop.set()
        ingestion.join(30)
    assert reader.returncode == 0, reader.stderr
    result = json.loads(reader.stdout)
    assert result["errors"] == []
    counts = result["counts"]
    assert counts and counts == sorted(counts), counts
    assert counts[-1] <= landed[0] and counts[-1] % 20 == 1  # whole batches, never twice
