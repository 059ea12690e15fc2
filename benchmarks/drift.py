"""Drift monitoring: `python -m benchmarks drift` prints JSON lines, each beside its baseline.

On a pool of the simulator's payments (`--pool` of them, after a simulated day of warm-up so
that the 24-hour windows are full), with the fraud model's features computed as training
computes them and a stand-in score (a logistic regression fitted on the pool against the
simulator's ground truth; monitoring reads scores, it does not compute them), it measures
(`--model maintenance`: the same on telemetry readings and the maintenance model's features):

- `naive_false_alarm_rate` (baseline: a report alarms when any feature's KS test, uncorrected,
  has p < 0.05) and `false_alarm_rate` (goal <= 0.05): over `--replicates` pairs of windows of
  `--window` rows drawn from the pool (one distribution), the share whose report's action is
  not none;
- `psi_only_detection_rate` (baseline: PSI >= 0.1 alone) and `detection_rate` (goal >= 0.95):
  over as many pairs, the current window with one feature (each in turn) shifted by half its
  standard deviation (`--shift`), the share whose report flags that feature (warn or act);
- `duckdb_read_s` (baseline: DuckDB reading a reference and a current window, `--rows` in all,
  from Parquet into Arrow) and `monitoring_run_s` (goal <= 3 x): the same read, then the
  model's full monitoring: feature and prediction drift, input quality, and performance over
  the current window's labels. Best of `--rounds`, alternating.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import Report

REPORT = Report("drift", digits=4)
emit = REPORT.emit
progress = REPORT.progress

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EVENTS_PER_S = 0.2  # the simulated clock: 17,280 events a day (500 accounts, 50 devices)
WARM_UP = dt.timedelta(days=1)
# Per model: its feature set's name, the traffic mix, and the ground truth that is not positive.
MODELS = {
    "fraud": ("payments", (1.0, 0.0, 0.0), "legit"),
    "maintenance": ("telemetry", (0.0, 1.0, 0.0), "healthy"),
}


def feature_pool(model: str, size: int, seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """The model's feature set, and the features (a column per `numeric` feature) and ground
    truth (1: fraud, or a degrading or failed device) of `size` simulated events after the
    warm-up."""
    import itertools

    from benchmarks.traffic import Traffic, simulated_clock
    from shared.features.base import epoch_seconds
    from shared.features.offline import point_in_time
    from shared.features.sets import FEATURE_SETS

    name, mix, negative = MODELS[model]
    features = next(f for f in FEATURE_SETS if f.name == name)
    events = Traffic(seed, mix=mix).events(simulated_clock(START, EVENTS_PER_S))
    warm = epoch_seconds(START + WARM_UP)

    def rows() -> Iterator[dict[str, Any]]:
        for event in events:
            if event["type"] == features.event_type:
                moment = dt.datetime.fromisoformat(event["time"])
                yield {**event["data"], "t": epoch_seconds(moment), "truth": event["simlabel"]}

    x = np.empty((size, len(features.numeric)), order="F")
    y = np.empty(size, dtype=np.int8)
    kept = ((row, found) for row, found in point_in_time(features, rows()) if row["t"] >= warm)
    for i, (row, found) in enumerate(itertools.islice(kept, size)):
        x[i] = [found[name] for name in features.numeric]
        y[i] = row["truth"] != negative
    return features, x, y


def stand_in_scorer(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A probability of the positive class: standardised features, logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    model.fit(x, y)
    return lambda rows: np.asarray(model.predict_proba(rows)[:, 1], dtype=np.float64)


def window(x: np.ndarray, names: tuple[str, ...], score: Callable[[np.ndarray], np.ndarray]) -> Any:
    from shared.monitoring.monitor import Window

    return Window({name: x[:, j] for j, name in enumerate(names)}, score(x))


def false_alarms(
    model: Any,
    x: np.ndarray,
    score: Callable[[np.ndarray], np.ndarray],
    count: int,
    rows: int,
    rng: np.random.Generator,
) -> None:
    """The false alarm rate of reports on pairs of windows from the pool, beside an
    uncorrected KS test's."""
    from scipy.stats import ks_2samp

    from shared.monitoring.monitor import monitor

    names = model.features
    alarms = naive_alarms = 0
    for replicate in range(count):
        ref = x[rng.integers(0, len(x), rows)]
        cur = x[rng.integers(0, len(x), rows)]
        report = monitor(model, window(ref, names, score), window(cur, names, score))
        alarms += report.action != "none"
        naive_alarms += any(
            ks_2samp(ref[:, j], cur[:, j], method="asymp").pvalue < 0.05 for j in range(len(names))
        )
        if replicate % 25 == 24:
            progress(f"no drift, {replicate + 1} replicates: {alarms} false alarms")
    emit(
        "naive_false_alarm_rate",
        naive_alarms / count,
        "share",
        role="baseline",
        rule="any feature's KS p < 0.05, uncorrected",
        replicates=count,
        window_rows=rows,
    )
    emit(
        "false_alarm_rate",
        alarms / count,
        "share",
        baseline="naive_false_alarm_rate",
        goal="<= 0.05",
        replicates=count,
        window_rows=rows,
    )


def detections(
    model: Any,
    x: np.ndarray,
    score: Callable[[np.ndarray], np.ndarray],
    count: int,
    rows: int,
    shift: float,
    rng: np.random.Generator,
) -> None:
    """The detection rate of one feature shifted by `shift` standard deviations (each feature
    in turn), beside PSI's alone."""
    from shared.monitoring.drift import PSI_WARN
    from shared.monitoring.monitor import monitor

    names = model.features
    spread = x.std(axis=0)
    caught: dict[str, list[bool]] = {name: [] for name in names}
    psi_caught = 0
    for replicate in range(count):
        j = replicate % len(names)
        ref = x[rng.integers(0, len(x), rows)]
        cur = x[rng.integers(0, len(x), rows)]
        cur[:, j] += shift * spread[j]
        report = monitor(model, window(ref, names, score), window(cur, names, score))
        shifted = report.features[j]
        caught[names[j]].append(shifted.drifts)
        psi_caught += shifted.psi >= PSI_WARN
        if replicate % 25 == 24:
            found = sum(sum(hits) for hits in caught.values())
            progress(f"{shift:g} sd shift, {replicate + 1} replicates: {found} detected")
    rates = {name: sum(hits) / len(hits) for name, hits in caught.items() if hits}
    weakest = min(rates, key=rates.__getitem__)
    emit(
        "psi_only_detection_rate",
        psi_caught / count,
        "share",
        role="baseline",
        rule="PSI >= 0.1 on the shifted feature",
        replicates=count,
        window_rows=rows,
    )
    emit(
        "detection_rate",
        sum(sum(h) for h in caught.values()) / count,
        "share",
        baseline="psi_only_detection_rate",
        goal=">= 0.95",
        shift_sd=shift,
        weakest_feature=weakest,
        weakest_rate=round(rates[weakest], 3),
        replicates=count,
        window_rows=rows,
    )


def write_windows(
    folder: Path,
    x: np.ndarray,
    y: np.ndarray,
    names: tuple[str, ...],
    score: Callable[[np.ndarray], np.ndarray],
    rows: int,
    rng: np.random.Generator,
) -> tuple[Path, Path]:
    """A reference and a current window, half of `rows` each, drawn from the pool, as
    Parquet files: the features, the score and the label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = []
    for which in ("reference", "current"):
        index = rng.integers(0, len(x), rows // 2)
        chosen = x[index]
        columns = {name: chosen[:, j] for j, name in enumerate(names)}
        columns["score"] = score(chosen)
        columns["label"] = y[index]
        path = folder / f"{which}.parquet"
        pq.write_table(pa.table(columns), path)
        paths.append(path)
    return paths[0], paths[1]


def timings(model: Any, reference: Path, current: Path, rounds: int, rows: int) -> None:
    """The full monitoring run against DuckDB reading the same rows, best of `rounds`."""
    import duckdb

    from shared.monitoring.monitor import labelled_from_arrow, monitor, window_from_arrow

    def read() -> tuple[Any, Any]:
        connection = duckdb.connect()
        try:
            query = "SELECT * FROM read_parquet($path)"
            ref, cur = (
                connection.sql(query, params={"path": str(path)}).to_arrow_table()
                for path in (reference, current)
            )
            return ref, cur
        finally:
            connection.close()

    def run() -> Any:
        ref, cur = read()
        return monitor(
            model,
            window_from_arrow(ref, model.features),
            window_from_arrow(cur, model.features),
            labelled_from_arrow(cur),
        )

    best = {"read": float("inf"), "run": float("inf")}
    report = None
    for round_ in range(rounds):
        for name, job in (("read", read), ("run", run)):
            started = time.perf_counter()
            result = job()
            best[name] = min(best[name], time.perf_counter() - started)
            if name == "run":
                report = result
        progress(f"round {round_ + 1}: read {best['read']:.3f} s, monitoring {best['run']:.3f} s")
    assert report is not None
    emit("duckdb_read_s", best["read"], "s", role="baseline", rows=rows)
    emit(
        "monitoring_run_s",
        best["run"],
        "s",
        baseline="duckdb_read_s",
        ratio=round(best["run"] / best["read"], 3),
        goal="<= 3",
        rows=rows,
        action=report.action,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks drift", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--model", choices=sorted(MODELS), default="fraud", help="(fraud)")
    parser.add_argument("--replicates", type=int, default=100, help="per rate (100)")
    parser.add_argument("--window", type=int, default=5_000, help="rows per window (5,000)")
    parser.add_argument("--shift", type=float, default=0.5, help="in standard deviations (0.5)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="timed rows (1,000,000)")
    parser.add_argument("--pool", type=int, default=100_000, help="simulated payments (100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (3)")
    parser.add_argument("--seed", type=int, default=7, help="the simulator's and draws' (7)")
    args = parser.parse_args(argv)
    if not 1 <= args.replicates <= 10_000 or not 100 <= args.window <= 1_000_000:
        parser.error("--replicates is 1 to 10,000, --window 100 to 1,000,000")
    if not 2_000 <= args.rows <= 100_000_000 or not 1_000 <= args.pool <= 10_000_000:
        parser.error("--rows is 2,000 to 100,000,000, --pool 1,000 to 10,000,000")
    if not 1 <= args.rounds <= 20 or not 0 < args.shift <= 10:
        parser.error("--rounds is 1 to 20, --shift above 0 to 10")
    from sklearn.metrics import average_precision_score

    from shared.monitoring.monitored import monitored_model

    started = time.perf_counter()
    features, x, y = feature_pool(args.model, args.pool, args.seed)
    took = time.perf_counter() - started
    progress(f"{args.pool:,} {features.event_type} events ({y.mean():.1%} positive), {took:.1f} s")
    score = stand_in_scorer(x, y)
    holdout_pr_auc = float(average_precision_score(y, score(x)))
    model = monitored_model(args.model, features, 0.5, expected_pr_auc=holdout_pr_auc)
    rng = np.random.default_rng(args.seed)
    false_alarms(model, x, score, args.replicates, args.window, rng)
    detections(model, x, score, args.replicates, args.window, args.shift, rng)
    with tempfile.TemporaryDirectory(prefix="drift-bench-", dir=Path.cwd()) as name:
        reference, current = write_windows(Path(name), x, y, model.features, score, args.rows, rng)
        timings(model, reference, current, args.rounds, args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
