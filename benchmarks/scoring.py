"""Models: `python -m benchmarks scoring` prints JSON lines, each figure beside its baseline.

On simulated history (`--days` of traffic at `--rate` events per simulated second, a fixed
seed, labels 10 times faster than real ones) in a temporary lake, it trains the fraud,
maintenance and recommendations models as the platform does, then measures:

- `native_batch100_rows_per_s` (baseline) and `onnx_batch100_rows_per_s` (goal >= 2 x): the
  fraud model on batches of 100 rows, LightGBM against onnxruntime, one thread each (the
  serving session's setting; LightGBM would otherwise use every core);
- `native_row_p99_us` (baseline) and `onnx_row_p99_us`: one row at a time;
- `ingest_function_events_per_s` (baseline) and `ingest_scored_events_per_s` (goal >= 0.5 x):
  the ingest function's body on batches of 1,000 of the simulator's payments, without a
  scorer, and with the online features and the fraud champion (alerts included);
- `rules_pr_auc` (baseline: the amount as the score) and `fraud_pr_auc` (goal: rules + 0.10),
  on the same time-based holdout; `maintenance_pr_auc`.

Then the HTTP figures (`benchmarks.scoring_http`), on a devhost started on a copy of the data
dir the models were trained in (their champions registered there): `score_http_rps` against
`noop_http_rps` against `aiohttp_http_rps` (with `noop_guarded_http_rps` and `health_http_rps`),
`score_http_p99_ms` and `recommend_http_p99_ms` at an offered 500 requests/s, and
`alert_latency_p50_s` and `p99_s` under 1,000 events/s.
`--http-only` trains and measures those alone; `--seconds` sets each load's length.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import scoring_http
from benchmarks.report import Report

REPORT = Report("scoring", digits=4)
emit = REPORT.emit
progress = REPORT.progress


def _rate(run: Any, rows: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return rows / best


def _p99_us(run: Any, rows: np.ndarray) -> float:
    timings = []
    for row in rows:
        started = time.perf_counter()
        run(row[None, :])
        timings.append((time.perf_counter() - started) * 1e6)
    return float(np.percentile(timings, 99))


def models(lake: Path, registry_dir: Path) -> Any:
    from embedded.documents.store import DocumentStore
    from shared.models.artifacts import LocalArtifacts
    from shared.models.registry import MODELS_CONTAINER, ModelRegistry
    from shared.models.service import Models
    from shared.models.training import ModelTraining
    from shared.pipeline.lake import Lake

    store = DocumentStore(registry_dir / "documents" / "platform.sqlite3")
    registry = ModelRegistry(store.container(MODELS_CONTAINER))
    artifacts = LocalArtifacts(registry_dir / "lake" / "models")
    return Models(registry, artifacts, ModelTraining(Lake(str(lake)), registry, artifacts))


def inference(champion: Any, x: np.ndarray) -> None:
    """Batch and single-row rates of the fraud model, native against ONNX."""
    batches = [x[i : i + 100] for i in range(0, len(x) - 99, 100)][:50]
    rows = sum(len(b) for b in batches)

    def predict(features: np.ndarray) -> Any:  # one thread, as the ONNX session has
        return champion.native.predict(features, num_threads=1)

    native = _rate(lambda: [predict(b) for b in batches], rows, 3)
    onnx = _rate(lambda: [champion.probabilities(b) for b in batches], rows, 3)
    emit("native_batch100_rows_per_s", native, "rows/s", role="baseline")
    emit(
        "onnx_batch100_rows_per_s",
        onnx,
        "rows/s",
        baseline="native_batch100_rows_per_s",
        ratio=round(onnx / native, 3),
        goal=">= 2",
    )
    sample = x[:1000]
    native_p99 = _p99_us(predict, sample)
    onnx_p99 = _p99_us(champion.probabilities, sample)
    emit("native_row_p99_us", native_p99, "us", role="baseline")
    emit(
        "onnx_row_p99_us",
        onnx_p99,
        "us",
        baseline="native_row_p99_us",
        ratio=round(onnx_p99 / native_p99, 3),
    )


def quality(lake: Path, trained: Any) -> None:
    from sklearn.metrics import average_precision_score

    from shared.features.payments import PaymentFeatures
    from shared.models import fraud
    from shared.models.boosting import split_by_time
    from shared.models.datasets import Reads
    from shared.pipeline.lake import Lake

    x, y, _ = fraud.labelled(Lake(str(lake)), Reads(), dt.timedelta(hours=16))
    holdout = split_by_time(len(y))[2]
    amount = x[holdout, PaymentFeatures.numeric.index("amount")]
    rules = float(average_precision_score(y[holdout], amount))
    model = trained.registry.get_version("fraud", 1).metrics["pr_auc"]
    emit("rules_pr_auc", rules, "pr_auc", role="baseline", rule="the amount as the score")
    emit(
        "fraud_pr_auc",
        model,
        "pr_auc",
        baseline="rules_pr_auc",
        uplift=round(model - rules, 4),
        goal="rules + 0.10",
    )
    maintenance = trained.registry.get_version("maintenance", 1).metrics["pr_auc"]
    emit("maintenance_pr_auc", maintenance, "pr_auc")


def simulated_payments(count: int) -> list[bytes]:
    """The simulator's payments of the last hours (its fraud rate, so as many alerts as real
    traffic would raise), as the hub holds them."""
    import itertools
    import json

    from benchmarks.traffic import Traffic, simulated_clock

    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)
    events = Traffic(17, mix=(1.0, 0.0, 0.0)).events(simulated_clock(start, count / 20_000))
    payments = (e for e in events if e["type"] == "payment.transaction")
    return [json.dumps(e).encode() for e in itertools.islice(payments, count)]


def ingest(folder: Path, trained_dir: Path, batches: int) -> None:
    """The ingest function's body on payments, without and with scoring."""
    import shutil

    from benchmarks.ingest import BATCH, hub_batches

    bodies = simulated_payments(BATCH * batches)
    rates: dict[str, list[float]] = {"plain": [], "scored": []}
    for round_ in range(2):
        for mode in ("plain", "scored"):
            data = folder / f"{mode}-{round_}"
            shutil.copytree(trained_dir, data)  # the registry and the model files
            os.environ["PLATFORM_DATA_DIR"] = os.environ["DEVHOST_DATA_DIR"] = str(data)
            os.environ["MODEL_REFRESH_S"] = "3600"
            import functions.ingest as ingest_module
            from shared.bootstrap import current_platform, install_platform

            install_platform(None)
            platform = current_platform()
            if mode == "plain":
                platform.events.ingestor._scorer = None  # the baseline: no scorer at all
            else:
                cache = platform.lazy_serving.get().champions
                if cache.get("fraud", wait_s=30) is None:
                    raise RuntimeError("the fraud champion did not load")
            function = next(iter(ingest_module.bp._function_builders)).build()
            call = function.get_user_function()
            call(hub_batches(bodies[:BATCH], 0)[0])  # warm-up: the table, the handles
            hub = hub_batches(bodies, BATCH)
            gc.collect()
            started = time.perf_counter()
            for batch in hub:
                call(batch)
            rates[mode].append(len(bodies) / (time.perf_counter() - started))
            progress(f"round {round_ + 1}, {mode}: {rates[mode][-1]:,.0f} events/s")
            install_platform(None)
    plain, scored = max(rates["plain"]), max(rates["scored"])
    emit("ingest_function_events_per_s", plain, "events/s", role="baseline")
    emit(
        "ingest_scored_events_per_s",
        scored,
        "events/s",
        baseline="ingest_function_events_per_s",
        ratio=round(scored / plain, 3),
        goal=">= 0.5",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks scoring", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--days", type=float, default=4.0, help="days of history (4)")
    parser.add_argument("--rate", type=float, default=0.5, help="events per second (0.5)")
    parser.add_argument("--batches", type=int, default=10, help="ingest batches (10)")
    parser.add_argument("--seconds", type=float, default=10.0, help="each HTTP load (10 s)")
    parser.add_argument("--http-only", action="store_true", help="the HTTP figures alone")
    args = parser.parse_args(argv)
    if not 0.5 <= args.days <= 60 or not 0 < args.rate <= 20 or not 1 <= args.batches <= 100:
        parser.error("--days is 0.5 to 60, --rate above 0 to 20, --batches 1 to 100")
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds is 1 to 600")
    from shared.models.champions import ChampionCache
    from shared.models.training import TrainingRequest
    from tests.modeldata import land_history, refresh

    with tempfile.TemporaryDirectory(prefix="scoring-bench-", dir=Path.cwd()) as name:
        folder = Path(name)
        lake, trained_dir = folder / "history", folder / "trained"
        progress(f"{args.days:g} days of history at {args.rate:g} events/s, then training")
        land_history(lake, days=args.days, rate=args.rate, seed=3, label_delay_scale=0.1)
        refresh(lake)
        trained = models(lake, trained_dir)
        for model in ("fraud", "maintenance", "recommendations"):
            trained.training.train(TrainingRequest(model, label_maturity_hours=16))
        if args.http_only:
            scoring_http.measure(trained_dir, folder, args.seconds, emit, progress)
            return 0
        champion = ChampionCache(trained, background=False).get("fraud")
        from shared.models import fraud
        from shared.models.datasets import Reads
        from shared.pipeline.lake import Lake

        x, _, _ = fraud.labelled(Lake(str(lake)), Reads(), dt.timedelta(hours=16))
        inference(champion, x)
        quality(lake, trained)
        scoring_http.measure(trained_dir, folder, args.seconds, emit, progress)
        ingest(folder, trained_dir, args.batches)
    return 0
