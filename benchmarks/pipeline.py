"""Gold refresh over 10 million silver rows: through the medallion orchestration on the devhost,
directly in DuckDB (the baseline), and one model in pandas; then the streaming CSV reader.

Prints JSON lines `{"benchmark": "pipeline", "metric", "value", "unit", ...}`. Sizes come from
the environment: BENCH_PIPELINE_ROWS (default 10,000,000 silver rows, split 50/30/20 over
payments, telemetry and interactions) and BENCH_CSV_MB (default 1024; 0 skips the CSV figure).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from deltalake import DeltaTable, write_deltalake

from benchmarks.pipeline_data import generate
from benchmarks.report import Report
from shared.batch.duckdb_engine import DuckDBEngine
from shared.batch.engine import RunStatus, SqlJob
from shared.pipeline.gold import load_models
from shared.pipeline.lake import Lake

REPORT = Report("pipeline", digits=3)
line = REPORT.emit
progress = REPORT.progress

ROOT = Path(__file__).resolve().parent.parent


def _jobs(lake: Lake, output_root: Path) -> dict[str, SqlJob]:
    jobs = {}
    for name, model in load_models().items():
        inputs = {t: lake.uri(*t.split(".", 1)) for t in model.inputs}
        empty = {
            table: columns
            for table, columns in model.empty_if_missing.items()
            if lake.open(table.split(".")[0], table.split(".")[1]) is None
        }
        jobs[name] = SqlJob(name, model.sql, inputs, str(output_root / name), empty_inputs=empty)
    return jobs


def duckdb_one(lake: Lake, output_root: Path, model: str) -> float:
    """One model alone in DuckDB: the figure to hold pandas against."""
    job = _jobs(lake, output_root)[model]
    started = time.perf_counter()
    DuckDBEngine().submit(job)
    return time.perf_counter() - started


def duckdb_direct(lake: Lake, output_root: Path) -> float:
    """Every gold model through DuckDBEngine in this process, all at once as the orchestration
    fans them out, so the difference is what the orchestration and the host add."""
    engine = DuckDBEngine()
    jobs = list(_jobs(lake, output_root).values())
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for state in pool.map(engine.submit, jobs):
            if state.status is not RunStatus.SUCCEEDED:
                raise RuntimeError(state.message)
    return time.perf_counter() - started


def pandas_account_daily_spend(lake: Lake, output: Path) -> float:
    """account_daily_spend in pandas: read the columns, group, sum, write Delta."""
    started = time.perf_counter()
    frame = DeltaTable(lake.uri("silver", "payment_transaction")).to_pandas(
        columns=["account_id", "event_date", "currency", "amount"]
    )
    frame["amount"] = frame["amount"].astype("float64")  # pandas has no fast decimal
    result = (
        frame.groupby(["account_id", "event_date", "currency"], observed=True)["amount"]
        .agg(txn_count="count", total_amount="sum")
        .reset_index()
        .rename(columns={"event_date": "day"})
    )
    write_deltalake(str(output), result, mode="overwrite")
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def through_orchestration(data_dir: Path) -> tuple[float, dict[str, Any]]:
    """POST a run to the real app on the devhost and time it until Completed."""
    port = _free_port()
    env = {**os.environ, "PLATFORM_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    env |= {"PIPELINE_POLL_FIRST_S": "0.5", "PIPELINE_POLL_MAX_S": "2"}
    log = open(data_dir / "devhost.log", "wb")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "devhost", "start", "--script-root", str(ROOT)]
    command += ["--port", str(port), "--data-dir", str(data_dir)]
    host = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/admin/host/status", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or host.poll() is not None:
                raise RuntimeError(f"the devhost did not start; see {data_dir / 'devhost.log'}")
            time.sleep(0.2)
        started = time.perf_counter()
        response = requests.post(f"{base}/api/pipelines/medallion/runs", timeout=30)
        response.raise_for_status()
        status_url = response.json()["statusQueryGetUri"]
        while (status := requests.get(status_url, timeout=30).json())["runtimeStatus"] in (
            "Pending",
            "Running",
        ):
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        if status["runtimeStatus"] != "Completed" or status["output"]["status"] != "succeeded":
            raise RuntimeError(f"the run did not succeed: {json.dumps(status)[:2000]}")
        return elapsed, status["output"]
    finally:
        host.terminate()
        host.wait(timeout=60)
        log.close()


def csv_figures(folder: Path, megabytes: int) -> dict[str, float]:
    """Stream a generated CSV of `megabytes` through the reader in a fresh process (for RSS)."""
    path = folder / "landing.csv"
    row = "acct-0000001,tx-00000000001,4242,123.45,EUR,merchant-000123,5411,NL,ecommerce\n"
    header = (
        "account_id,transaction_id,card_last4,amount,currency,merchant_id,mcc,country,channel\n"
    )
    block = row * 10_000
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header)
        while handle.tell() < megabytes * 1024 * 1024:
            handle.write(block)
    command = [sys.executable, "-m", "benchmarks.pipeline_csv", str(path)]
    output = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(output.stdout)
    figures["bytes"] = path.stat().st_size
    path.unlink()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks pipeline", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=int(os.environ.get("BENCH_PIPELINE_ROWS", "10000000")),
        help="silver rows to generate (default 10,000,000, or BENCH_PIPELINE_ROWS)",
    )
    parser.add_argument(
        "--csv-mb",
        type=int,
        default=int(os.environ.get("BENCH_CSV_MB", "1024")),
        help="size of the CSV for the reader figure; 0 skips it (default 1024, or BENCH_CSV_MB)",
    )
    args = parser.parse_args()
    if args.rows < 10 or args.csv_mb < 0:
        parser.error("--rows must be at least 10 and --csv-mb at least 0")
    total, csv_mb = args.rows, args.csv_mb
    rows = {
        "payment_transaction": total // 2,
        "iot_telemetry": total * 3 // 10,
        "app_interaction": total - total // 2 - total * 3 // 10,
    }
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-", dir=Path.cwd()) as folder:
        data_dir = Path(folder) / "data"
        lake = Lake(str(data_dir / "lake"))
        progress(f"generating {total:,} silver rows {rows}")
        started = time.perf_counter()
        generate(data_dir / "lake", rows)
        progress(f"generated in {time.perf_counter() - started:.1f} s")

        progress("gold directly in DuckDB")
        direct = duckdb_direct(lake, Path(folder) / "direct")
        progress("gold through the medallion orchestration on the devhost")
        pipeline, output = through_orchestration(data_dir)
        progress("account_daily_spend in pandas")
        pandas_s = pandas_account_daily_spend(lake, Path(folder) / "pandas")
        one_s = duckdb_one(lake, Path(folder) / "one", "account_daily_spend")

        models = len(output["gold"])
        line(
            "pipeline_gold_s",
            pipeline,
            "s",
            silver_rows=total,
            models=models,
            baseline="duckdb_direct_s",
        )
        line("duckdb_direct_s", direct, "s", silver_rows=total, models=models)
        line("pipeline_vs_direct", pipeline / direct, "ratio", goal="<= 1.5")
        line("orchestration_overhead_s", pipeline - direct, "s")
        payments = rows["payment_transaction"]
        line("pandas_s", pandas_s, "s", model="account_daily_spend", rows=payments)
        line("duckdb_one_model_s", one_s, "s", model="account_daily_spend", rows=payments)
        if csv_mb > 0:
            progress(f"streaming a {csv_mb} MB CSV through the file reader")
            csv = csv_figures(Path(folder), csv_mb)
            line("csv_read_rows_per_s", csv["rows_per_s"], "rows/s", bytes=csv["bytes"])
            line("csv_read_peak_rss_mb", csv["peak_rss_mb"], "MB", bytes=csv["bytes"], goal="< 500")
    return 0


if __name__ == "__main__":
    sys.exit(main())
