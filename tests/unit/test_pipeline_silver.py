"""Silver: typed columns, MERGE dedup on (source, event_id), late data, quarantine, watermarks."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from shared.pipeline import silver as silver_module
from shared.pipeline.lake import Lake
from shared.pipeline.quality import NotNull, Range
from shared.pipeline.silver import SilverBuilder
from shared.pipeline.specs import PAYMENT_TRANSACTION, SILVER_SPECS, SilverSpec
from shared.pipeline.state import StateConflict
from tests.lakedata import (
    T0,
    bronze_schema,
    land,
    medallion_for,
    payment,
    read,
    state_at,
    telemetry,
    version,
)

pytestmark = pytest.mark.unit

DAY = dt.timedelta(days=1)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def test_silver_holds_each_distinct_valid_event_once_with_typed_columns(lake: Path) -> None:
    land(
        lake,
        "payment.transaction",
        [
            payment("e1", "a1", 10.5, T0),
            payment("e2", "a1", 20.25, T0 + dt.timedelta(hours=14, minutes=59)),
            payment("e1", "a1", 10.5, T0),  # resubmitted in the same batch
            payment("e1", "a1", 10.5, T0, source="/devices/other"),  # another source's e1
        ],
    )
    outcome = medallion_for(lake).build_silver("payment_transaction", "run-1")

    rows = read(lake, "silver", "payment_transaction")
    assert sorted((r["source"], r["event_id"]) for r in rows) == [
        ("/devices/other", "e1"),
        ("/devices/test", "e1"),
        ("/devices/test", "e2"),
    ]
    amounts = {r["event_id"]: r["amount"] for r in rows if r["source"] == "/devices/test"}
    assert amounts == {"e1": Decimal("10.50"), "e2": Decimal("20.25")}
    assert all(r["event_time"].utcoffset() == dt.timedelta(0) for r in rows)
    assert {r["event_date"] for r in rows} == {T0.date()}
    assert rows[0]["card_last4"] == "4242"  # bronze columns pass through
    assert outcome.rows_in == 4
    assert outcome.rows_out == 3
    assert outcome.duplicates == 1
    assert outcome.quarantined == 0


def test_a_resubmitted_event_in_a_later_batch_is_not_doubled(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("e1", "a1", 10.5, T0)])
    pipeline.build_silver("payment_transaction", "run-1")
    land(lake, "payment.transaction", [payment("e1", "a1", 10.5, T0), payment("e2", "a1", 1, T0)])

    outcome = pipeline.build_silver("payment_transaction", "run-2")

    assert sorted(r["event_id"] for r in read(lake, "silver", "payment_transaction")) == [
        "e1",
        "e2",
    ]
    assert (outcome.rows_in, outcome.rows_out, outcome.duplicates) == (2, 1, 1)
    assert (outcome.bronze_from, outcome.bronze_to) == (0, 1)


def test_late_events_land_on_their_event_day_and_are_counted(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("new", "a1", 5, T0 + DAY)])
    pipeline.build_silver("payment_transaction", "run-1")
    land(lake, "payment.transaction", [payment("old", "a1", 7, T0 - 3 * DAY)])

    outcome = pipeline.build_silver("payment_transaction", "run-2")

    days = {r["event_id"]: r["event_date"] for r in read(lake, "silver", "payment_transaction")}
    assert days == {"new": (T0 + DAY).date(), "old": (T0 - 3 * DAY).date()}
    assert outcome.late_rows == 1


def test_a_run_with_no_new_bronze_changes_nothing(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("e1", "a1", 10.5, T0)])
    pipeline.build_silver("payment_transaction", "run-1")
    before = (version(lake, "silver", "payment_transaction"), version(lake, "silver", "_quality"))

    outcome = pipeline.build_silver("payment_transaction", "run-2")

    assert outcome.status == "up_to_date"
    after = (version(lake, "silver", "payment_transaction"), version(lake, "silver", "_quality"))
    assert after == before


def test_blocking_failures_are_quarantined_with_the_rule_and_never_reach_silver(
    lake: Path,
) -> None:
    land(
        lake,
        "payment.transaction",
        [
            payment("ok", "a1", 10, T0),
            payment("huge", "a1", 5_000_000, T0),
            payment("lower", "a1", 3, T0, currency="eur"),
            payment("bad-channel", "a1", 3, T0, channel="teleport"),
        ],
    )
    outcome = medallion_for(lake).build_silver("payment_transaction", "run-1")

    assert [r["event_id"] for r in read(lake, "silver", "payment_transaction")] == ["ok"]
    quarantined = {r["event_id"]: r for r in read(lake, "silver", "quarantine")}
    assert {k: v["rule"] for k, v in quarantined.items()} == {
        "huge": "range:amount",
        "lower": "pattern:currency",
        "bad-channel": "accepted_values:channel",
    }
    assert json.loads(quarantined["huge"]["row"])["amount"] == 5_000_000.0
    assert quarantined["huge"]["run_id"] == "run-1"
    assert outcome.quarantined == 3
    blocking_failures = {c.rule for c in outcome.checks if c.blocking and not c.passed}
    assert blocking_failures == {
        "range:amount",
        "pattern:currency",
        "accepted_values:channel",
    }
    quality = {r["rule"]: r for r in read(lake, "silver", "_quality")}
    assert quality["range:amount"]["rows_failed"] == 1
    assert quality["range:amount"]["rows_checked"] == 4
    assert quality["range:amount"]["passed"] is False
    assert quality["not_null:account_id"]["passed"] is True
    assert {r["run_id"] for r in quality.values()} == {"run-1"}


def test_a_non_blocking_rule_is_recorded_but_keeps_its_rows(lake: Path) -> None:
    spec = SilverSpec(
        PAYMENT_TRANSACTION.event_type,
        PAYMENT_TRANSACTION.columns,
        row_rules=(Range("amount", max=100, blocking=False),),
    )
    land(lake, "payment.transaction", [payment("big", "a1", 500, T0)])
    builder = SilverBuilder(Lake(str(lake)), state_at(lake.parent / "s.sqlite"))

    outcome = builder.build(spec, "run-1")

    assert [r["event_id"] for r in read(lake, "silver", "payment_transaction")] == ["big"]
    assert outcome.quarantined == 0
    assert "range:amount" in outcome.failed_checks


def test_a_value_that_does_not_convert_is_quarantined_as_a_type_failure(lake: Path) -> None:
    schema = bronze_schema("payment.transaction")
    schema = schema.set(schema.get_field_index("amount"), pa.field("amount", pa.string()))
    rows = [payment("text-amount", "a1", 0, T0), payment("fine", "a1", 0, T0)]
    rows[0]["amount"], rows[1]["amount"] = "twelve", "12.30"
    table = pa.Table.from_pylist(rows, schema=schema)
    write_deltalake(f"{lake}/bronze/payment_transaction", table, partition_by=["event_date"])

    medallion_for(lake).build_silver("payment_transaction", "run-1")

    assert [r["amount"] for r in read(lake, "silver", "payment_transaction")] == [Decimal("12.30")]
    [bad] = read(lake, "silver", "quarantine")
    assert bad["rule"] == "type:amount"
    assert json.loads(bad["row"])["amount"] == "twelve"
    assert "not_null:amount" in bad["reasons"]


def test_a_required_column_missing_from_bronze_quarantines_as_not_null(lake: Path) -> None:
    schema = bronze_schema("payment.transaction")
    older = schema.remove(schema.get_field_index("merchant_id"))  # an older bronze schema
    row = payment("x", "a1", 1, T0)
    del row["merchant_id"]
    table = pa.Table.from_pylist([row], schema=older)
    write_deltalake(f"{lake}/bronze/payment_transaction", table, partition_by=["event_date"])

    outcome = medallion_for(lake).build_silver("payment_transaction", "run-1")

    assert outcome.rows_out == 0
    assert [r["rule"] for r in read(lake, "silver", "quarantine")] == ["not_null:merchant_id"]


def test_a_retried_run_quarantines_nothing_twice(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("huge", "a1", 9_999_999, T0)])
    monkeypatch.setattr(silver_module, "append_quality", _explode)
    with pytest.raises(OSError):
        pipeline.build_silver("payment_transaction", "run-1")
    monkeypatch.undo()

    pipeline.build_silver("payment_transaction", "run-2")

    assert len(read(lake, "silver", "quarantine")) == 1


def _explode(*args: object, **kwargs: object) -> None:
    raise OSError("disk full")


def test_a_failed_run_leaves_the_watermark_and_the_retry_catches_up(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("e1", "a1", 1, T0)])
    pipeline.build_silver("payment_transaction", "run-1")
    watermark = pipeline.state.read("medallion", "silver:payment_transaction")
    land(lake, "payment.transaction", [payment("e2", "a1", 2, T0), payment("e3", "a1", 3, T0)])
    monkeypatch.setattr(silver_module, "merge_silver", _explode)

    with pytest.raises(OSError, match="disk full"):
        pipeline.build_silver("payment_transaction", "run-2")

    assert pipeline.state.read("medallion", "silver:payment_transaction") == watermark
    monkeypatch.undo()
    outcome = pipeline.build_silver("payment_transaction", "run-3")
    assert outcome.rows_out == 2
    assert sorted(r["event_id"] for r in read(lake, "silver", "payment_transaction")) == [
        "e1",
        "e2",
        "e3",
    ]


def test_two_runs_of_one_table_cannot_both_move_its_watermark(lake: Path) -> None:
    state = state_at(lake.parent / "state.sqlite")
    first = state.write("medallion", "silver:t", {"bronze_version": 1}, None)
    state.write("medallion", "silver:t", {"bronze_version": 2}, first)
    with pytest.raises(StateConflict):
        state.write("medallion", "silver:t", {"bronze_version": 3}, first)
    with pytest.raises(StateConflict):
        state.write("medallion", "silver:t", {"bronze_version": 3}, None)
    assert state.read("medallion", "silver:t") is not None
    assert state.read("medallion", "silver:t")[0] == {"bronze_version": 2}  # type: ignore[index]


def test_small_chunks_still_deduplicate_across_files(lake: Path) -> None:
    for _ in range(3):
        land(lake, "payment.transaction", [payment("same", "a1", 1, T0), payment("b", "a", 2, T0)])
    land(lake, "payment.transaction", [payment("c", "a1", 1, T0)])

    outcome = medallion_for(lake, chunk_rows=1).build_silver("payment_transaction", "run-1")

    assert sorted(r["event_id"] for r in read(lake, "silver", "payment_transaction")) == [
        "b",
        "c",
        "same",
    ]
    assert (outcome.rows_in, outcome.rows_out, outcome.duplicates) == (7, 3, 4)


def test_freshness_and_row_count_change_warn_without_quarantining(lake: Path) -> None:
    now = T0 + 3 * DAY
    builder = SilverBuilder(
        Lake(str(lake)),
        state_at(lake.parent / "s.sqlite"),
        clock=lambda: now,
    )
    spec = SILVER_SPECS["iot_telemetry"]
    land(lake, "iot.telemetry", [telemetry("t1", "d1", T0)])
    first = {c.rule: c for c in builder.build(spec, "run-1").checks}
    land(lake, "iot.telemetry", [telemetry(f"u{i}", "d1", now) for i in range(20)])
    second = {c.rule: c for c in builder.build(spec, "run-2").checks}

    assert first["freshness:event_time"].passed is False  # three days old
    assert "s old" in first["freshness:event_time"].detail
    assert first["row_count_change"].passed is True  # nothing to compare with
    assert second["freshness:event_time"].passed is True
    assert second["row_count_change"].passed is False  # 20 rows after 1
    assert len(read(lake, "silver", "iot_telemetry")) == 21


def test_no_bronze_table_yet_is_not_an_error(lake: Path) -> None:
    assert medallion_for(lake).build_silver("app_interaction", "run-1").status == "no_bronze"


def test_an_unknown_table_is_refused(lake: Path) -> None:
    from shared.pipeline.service import UnknownTable

    with pytest.raises(UnknownTable):
        medallion_for(lake).build_silver("nope", "run-1")


def test_quality_rules_need_no_declared_blocking_for_table_rules() -> None:
    assert NotNull("x").blocking is True
    assert all(rule.blocking is False for rule in PAYMENT_TRANSACTION.table_rules)
