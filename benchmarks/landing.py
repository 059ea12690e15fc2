"""File landing throughput: `python -m benchmarks landing [--size-mb N]` prints JSON lines.

- `csv_read_rows_per_s` (baseline): the streaming CSV reader of `shared.files` alone, on the
  same file, in a fresh process.
- `landing_rows_per_s`: the `land_file` function's body, called with the streaming
  `func.InputStream` the devhost's blob trigger gives it, from bytes to committed Delta (valid
  rows in bronze and rejected ones in the dead-letter table), in a fresh process.
- `landing_peak_rss_mb`: that process's peak resident memory (`VmHWM`), goal < 500 MB.

The CSV (payments, one row in a thousand with a mistyped card number) is generated in a
temporary folder under the current directory, outside the measured processes, and deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.report import Report

REPORT = Report("landing", digits=2)
emit = REPORT.emit
progress = REPORT.progress

ROOT = Path(__file__).resolve().parent.parent
BLOB = "landing/payment.transaction/bench.csv"


def peak_rss_mb() -> float:
    """This process's own peak RSS. Not ru_maxrss: after exec it keeps the parent's peak."""
    import resource

    with open("/proc/self/status", encoding="ascii") as status:
        for entry in status:
            if entry.startswith("VmHWM:"):
                return int(entry.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def land_in_this_process(data_dir: Path) -> dict[str, Any]:
    """Call `land_file` on the generated blob as the devhost does; rows landed and the time."""
    os.environ["PLATFORM_DATA_DIR"] = str(data_dir)
    from deltalake import DeltaTable

    from devhost.blob.store import BlobStore
    from devhost.blob.stream import local_uri, open_blob
    from functions import landing
    from shared.bootstrap import current_platform

    current_platform()  # settings and clients, built once per process as in the worker
    land_file = next(iter(landing.bp._function_builders)).build().get_user_function()
    container, _, name = BLOB.partition("/")
    blob = next(b for b in BlobStore(data_dir / "blobs").scan(container) if b.name == name)
    stream = open_blob(blob, local_uri(blob.path))
    started = time.perf_counter()
    try:
        land_file(stream)
    finally:
        stream.close()
    seconds = time.perf_counter() - started

    def rows(table: str) -> int:
        actions = DeltaTable(str(data_dir / "lake" / "bronze" / table)).get_add_actions(True)
        return int(sum(actions.column("num_records").to_pylist()))

    return {
        "rows": rows("payment_transaction"),
        "rejected": rows("deadletter"),
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def in_fresh_process(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    output = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if output.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{output.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size-mb", type=float, default=1024.0, help="CSV size (MiB)")
    parser.add_argument("--land-only", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.land_only:
        print(json.dumps(land_in_this_process(Path(args.land_only))))
        return 0
    from benchmarks.landing_data import write_payments_csv

    with tempfile.TemporaryDirectory(prefix="landing-bench-", dir=Path.cwd()) as folder:
        data_dir = Path(folder) / "data"
        path = data_dir / "blobs" / BLOB
        path.parent.mkdir(parents=True)
        progress(f"writing a {args.size_mb:g} MiB CSV of payments to {path}")
        generated, bad = write_payments_csv(path, args.size_mb)
        old = time.time() - 60  # settled, as the blob store wants it
        os.utime(path, (old, old))
        size = path.stat().st_size
        progress(f"{generated:,} rows ({bad:,} invalid); reading it with the CSV reader")
        read = in_fresh_process(["-m", "benchmarks.pipeline_csv", str(path)])
        progress(f"read at {read['rows_per_s']:,.0f} rows/s; landing it through land_file")
        landed = in_fresh_process(["-m", "benchmarks.landing", "--land-only", str(data_dir)])
    if (landed["rows"], landed["rejected"]) != (generated - bad, bad):
        raise RuntimeError(f"landed {landed}, expected {generated - bad} rows and {bad} rejected")
    rate = landed["rows"] / landed["seconds"]
    facts = {"rows": landed["rows"], "rejected": landed["rejected"], "bytes": size}
    emit("csv_read_rows_per_s", read["rows_per_s"], "rows/s", rows=read["rows"], bytes=size)
    emit(
        "landing_rows_per_s",
        rate,
        "rows/s",
        seconds=round(landed["seconds"], 2),
        mb_per_s=round(size / 2**20 / landed["seconds"], 2),
        vs_csv_read=round(rate / read["rows_per_s"], 3),
        **facts,
    )
    emit("landing_peak_rss_mb", landed["peak_rss_mb"], "MB", goal="< 500", **facts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
