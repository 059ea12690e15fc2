"""Gold SQL models on DuckDB: sums match sums computed here, reruns change nothing."""

from __future__ import annotations

import datetime as dt
import random
import statistics
from collections import Counter, defaultdict
from decimal import Decimal
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from shared.batch.sql import ModelSqlError
from shared.pipeline.gold import load_models, parse_model
from tests.lakedata import (
    T0,
    interaction,
    land,
    land_deadletters,
    medallion_for,
    payment,
    read,
    telemetry,
    version,
)

pytestmark = pytest.mark.unit

MODELS = (
    "account_daily_spend",
    "device_health_hourly",
    "ingestion_kpis",
    "item_pairs",
    "item_popularity",
    "merchant_daily",
)


def _payments(rng: random.Random, count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        when = T0 + dt.timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        amount = Decimal(rng.randrange(1, 100_000)) / 100
        rows.append(
            payment(
                f"p{i}",
                f"acct-{rng.randrange(5)}",
                float(amount),
                when,
                merchant_id=f"m-{rng.randrange(3)}",
                currency=rng.choice(["EUR", "USD"]),
                channel=rng.choice(["pos", "ecommerce", "atm"]),
            )
        )
    return rows


def _refresh(pipeline: Any, run: str) -> dict[str, Any]:
    results = {}
    for table in pipeline.plan()["silver"]:
        pipeline.build_silver(table, run)
    for model in pipeline.plan()["gold"]:
        submission = pipeline.submit_gold(model, run)
        if submission.run is not None:
            assert submission.run.status == "succeeded", submission
            pipeline.finish_gold(submission, submission.run)
        results[model] = submission
    return results


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def test_the_gold_models_are_the_six_the_platform_needs() -> None:
    models = load_models()
    assert tuple(sorted(models)) == MODELS
    assert models["account_daily_spend"].keys == ("account_id", "day", "currency")
    assert models["merchant_daily"].keys == ("merchant_id", "day", "currency")
    assert models["ingestion_kpis"].inputs >= {"bronze.deadletter", "silver.iot_telemetry"}


def test_account_daily_spend_and_merchant_daily_match_sums_computed_here(lake: Path) -> None:
    rows = _payments(random.Random(7), 300)
    land(lake, "payment.transaction", rows[:200])
    land(lake, "payment.transaction", rows[150:])  # 50 resubmitted
    _refresh(medallion_for(lake), "run-1")

    expected: dict[tuple[str, dt.date, str], list[Decimal]] = defaultdict(list)
    for row in rows:
        key = (row["account_id"], row["event_time"].date(), row["currency"])
        expected[key].append(Decimal(str(row["amount"])).quantize(Decimal("0.01")))
    spend = {
        (r["account_id"], r["day"], r["currency"]): r
        for r in read(lake, "gold", "account_daily_spend")
    }
    assert set(spend) == set(expected)
    for key, amounts in expected.items():
        assert spend[key]["txn_count"] == len(amounts)
        assert spend[key]["total_amount"] == sum(amounts)

    merchants = read(lake, "gold", "merchant_daily")
    assert sum(r["txn_count"] for r in merchants) == 300
    assert sum(r["total_amount"] for r in merchants) == sum(sum(v) for v in expected.values())
    ecommerce = Counter(
        (r["merchant_id"], r["event_time"].date(), r["currency"])
        for r in rows
        if r["channel"] == "ecommerce"
    )
    for row in merchants:
        assert row["ecommerce_txns"] == ecommerce[(row["merchant_id"], row["day"], row["currency"])]


def test_device_health_hourly_has_averages_maxima_p95_and_counts(lake: Path) -> None:
    rng = random.Random(3)
    rows = [
        telemetry(
            f"t{i}", f"dev-{i % 2}", T0 + dt.timedelta(minutes=i), vibration_mm_s=rng.uniform(0, 20)
        )
        for i in range(150)
    ]
    land(lake, "iot.telemetry", rows)
    _refresh(medallion_for(lake), "run-1")

    by_hour: dict[tuple[str, dt.datetime], list[float]] = defaultdict(list)
    for row in rows:
        hour = row["event_time"].replace(minute=0, second=0, microsecond=0)
        by_hour[(row["device_id"], hour)].append(row["vibration_mm_s"])
    gold = {(r["device_id"], r["hour"]): r for r in read(lake, "gold", "device_health_hourly")}
    assert set(gold) == set(by_hour)
    for key, values in by_hour.items():
        assert gold[key]["reading_count"] == len(values)
        assert gold[key]["max_vibration_mm_s"] == max(values)
        assert gold[key]["avg_vibration_mm_s"] == pytest.approx(statistics.fmean(values))
        p95 = statistics.quantiles(values, n=20, method="inclusive")[-1]
        assert gold[key]["p95_vibration_mm_s"] == pytest.approx(p95)


def test_item_popularity_and_pairs_count_sessions(lake: Path) -> None:
    rng = random.Random(11)
    rows = []
    for i in range(400):
        session = f"s{rng.randrange(40)}"
        rows.append(
            interaction(
                f"i{i}",
                f"u{rng.randrange(15)}",
                f"item-{rng.randrange(8)}",
                rng.choice(["view", "view", "click", "add_to_cart", "purchase"]),
                session,
                T0 + dt.timedelta(seconds=i),
            )
        )
    land(lake, "app.interaction", rows)
    _refresh(medallion_for(lake), "run-1")

    popularity = {r["item_id"]: r for r in read(lake, "gold", "item_popularity")}
    for item in {r["item_id"] for r in rows}:
        mine = [r for r in rows if r["item_id"] == item]
        assert popularity[item]["views"] == sum(r["action"] == "view" for r in mine)
        assert popularity[item]["purchases"] == sum(r["action"] == "purchase" for r in mine)
        assert popularity[item]["sessions"] == len({r["session_id"] for r in mine})
    ranks = sorted(popularity.values(), key=lambda r: r["popularity_rank"])
    assert [r["popularity_score"] for r in ranks] == sorted(
        (r["popularity_score"] for r in ranks), reverse=True
    )

    sessions: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        sessions[row["session_id"]].add(row["item_id"])
    together = Counter(
        pair for items in sessions.values() for pair in combinations(sorted(items), 2)
    )
    pairs = {
        (r["item_a"], r["item_b"]): r["sessions_together"] for r in read(lake, "gold", "item_pairs")
    }
    assert pairs == dict(together)


def test_ingestion_kpis_count_events_and_deadletters_per_type_and_hour(lake: Path) -> None:
    land(
        lake,
        "payment.transaction",
        [payment(f"p{i}", "a", 1, T0, lag=dt.timedelta(seconds=i)) for i in range(1, 11)],
    )
    land(lake, "iot.telemetry", [telemetry("t1", "d", T0)])
    landed = T0 + dt.timedelta(seconds=3)
    land_deadletters(
        lake,
        [
            {"event_id": f"x{i}", "event_type": "payment.transaction", "ingested_at": landed}
            for i in range(3)
        ]
        + [
            {
                "event_id": None,
                "event_type": None,
                "reason": "decode",
                "ingested_at": landed + dt.timedelta(hours=2),
            }
        ],
    )
    _refresh(medallion_for(lake), "run-1")

    kpis = {(r["event_type"], r["hour"]): r for r in read(lake, "gold", "ingestion_kpis")}
    hour = T0.replace(minute=0)
    payments = kpis[("payment.transaction", hour)]
    assert (payments["events"], payments["deadletters"]) == (10, 3)
    assert payments["lag_p50_s"] == pytest.approx(5.5)
    assert payments["lag_max_s"] == pytest.approx(10)
    assert kpis[("iot.telemetry", hour)]["deadletters"] == 0
    unknown = kpis[("unknown", hour + dt.timedelta(hours=2))]
    assert (unknown["events"], unknown["deadletters"]) == (0, 1)


def test_models_over_types_with_no_data_yet_build_empty_tables(lake: Path) -> None:
    land(lake, "payment.transaction", [payment("p1", "a", 1, T0)])
    _refresh(medallion_for(lake), "run-1")
    assert read(lake, "gold", "device_health_hourly") == []
    assert read(lake, "gold", "item_pairs") == []
    assert len(read(lake, "gold", "account_daily_spend")) == 1


def test_a_second_run_with_no_new_data_changes_nothing(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", _payments(random.Random(1), 50))
    _refresh(pipeline, "run-1")
    versions = {m: version(lake, "gold", m) for m in MODELS}
    before = {m: read(lake, "gold", m) for m in MODELS}

    second = _refresh(pipeline, "run-2")

    assert all(submission.run is None for submission in second.values())
    assert {m: version(lake, "gold", m) for m in MODELS} == versions
    assert {m: read(lake, "gold", m) for m in MODELS} == before


def test_new_and_late_data_rebuild_only_the_models_that_read_it(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("p1", "a", 10, T0)])
    land(lake, "iot.telemetry", [telemetry("t1", "d", T0)])
    _refresh(pipeline, "run-1")
    land(lake, "payment.transaction", [payment("late", "a", 5, T0 - dt.timedelta(days=2))])

    second = _refresh(pipeline, "run-2")

    assert second["device_health_hourly"].run is None
    assert second["account_daily_spend"].run.status == "succeeded"
    spend = {r["day"]: r["total_amount"] for r in read(lake, "gold", "account_daily_spend")}
    assert spend == {
        T0.date(): Decimal("10.00"),
        (T0 - dt.timedelta(days=2)).date(): Decimal("5.00"),
    }


def test_a_failed_model_is_rebuilt_by_the_next_run(lake: Path) -> None:
    from shared.batch.engine import RunState, RunStatus

    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("p1", "a", 10, T0)])
    pipeline.build_silver("payment_transaction", "run-1")
    submission = pipeline.submit_gold("account_daily_spend", "run-1")
    failed = RunState("duckdb", "x", RunStatus.FAILED, "boom")
    pipeline.finish_gold(submission, failed)  # not recorded as built

    assert pipeline.submit_gold("account_daily_spend", "run-2").run is not None


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("SELECT 1; SELECT 2", "exactly one SELECT"),
        ("DELETE FROM silver.x", "exactly one SELECT"),
        ("SELECT FROM WHERE", "does not parse"),
    ],
)
def test_a_model_that_is_not_one_query_is_refused(sql: str, problem: str) -> None:
    with pytest.raises(ModelSqlError, match=problem):
        parse_model("bad", sql)


def test_model_headers_declare_keys_and_empty_inputs() -> None:
    model = parse_model(
        "m",
        "-- keys: a, b\n-- empty_if_missing: bronze.x(a VARCHAR, t TIMESTAMPTZ)\n"
        "SELECT a, b FROM bronze.x JOIN silver.y USING (a)",
    )
    assert model.keys == ("a", "b")
    assert model.inputs == {"bronze.x", "silver.y"}
    assert model.empty_if_missing == {"bronze.x": {"a": "VARCHAR", "t": "TIMESTAMPTZ"}}
