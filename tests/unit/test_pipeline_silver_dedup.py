"""Silver dedup on (source, event_id) alone: a resend whose event time moved to another day."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from embedded.documents.model import Query
from embedded.documents.store import DocumentStore
from shared.pipeline.state import STATE_CONTAINER
from tests.lakedata import T0, land, medallion_for, payment, read

pytestmark = pytest.mark.unit

DAY = dt.timedelta(days=1)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def _silver(lake: Path) -> list[tuple[str, str, dt.date, object]]:
    rows = read(lake, "silver", "payment_transaction")
    return sorted((r["source"], r["event_id"], r["event_date"], r["amount"]) for r in rows)


def _counts(outcome: dict[str, object]) -> tuple[object, ...]:
    return (outcome.rows_in, outcome.rows_out, outcome.duplicates, outcome.quarantined)


def test_a_resend_on_another_day_in_a_later_run_adds_no_row(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("e1", "a1", 10, T0)])
    pipeline.build_silver("payment_transaction", "run-1")
    land(
        lake,
        "payment.transaction",
        [payment("e1", "a1", 99, T0 + DAY), payment("e2", "a1", 5, T0 + DAY)],
    )

    outcome = pipeline.build_silver("payment_transaction", "run-2")

    [first, second] = _silver(lake)
    assert first[1:3] == ("e1", T0.date())  # the first landing wins
    assert first[3] == 10
    assert second[1:3] == ("e2", (T0 + DAY).date())
    assert _counts(outcome) == (2, 1, 1, 0)


def test_a_resend_on_an_earlier_day_is_dropped_too(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("e1", "a1", 10, T0)])
    pipeline.build_silver("payment_transaction", "run-1")
    land(lake, "payment.transaction", [payment("e1", "a1", 10, T0 - 3 * DAY)])

    outcome = pipeline.build_silver("payment_transaction", "run-2")

    assert [row[1:3] for row in _silver(lake)] == [("e1", T0.date())]
    assert _counts(outcome) == (1, 0, 1, 0)


def test_one_key_on_two_days_in_one_chunk_lands_once(lake: Path) -> None:
    land(
        lake,
        "payment.transaction",
        [payment("e1", "a1", 10, T0), payment("e1", "a1", 10, T0 + 2 * DAY)],
    )

    outcome = medallion_for(lake).build_silver("payment_transaction", "run-1")

    assert [row[1:3] for row in _silver(lake)] == [("e1", T0.date())]  # landed first
    assert _counts(outcome) == (2, 1, 1, 0)


def test_one_key_on_two_days_across_chunks_of_one_run_lands_once(lake: Path) -> None:
    land(lake, "payment.transaction", [payment("e1", "a1", 10, T0)])
    land(lake, "payment.transaction", [payment("e1", "a1", 10, T0 + DAY)])
    land(lake, "payment.transaction", [payment("e2", "a1", 1, T0 + 2 * DAY)])

    outcome = medallion_for(lake, chunk_rows=1).build_silver("payment_transaction", "run-1")

    assert [row[1] for row in _silver(lake)] == ["e1", "e2"]
    assert _counts(outcome) == (3, 2, 1, 0)


def test_the_same_event_id_from_another_source_is_not_a_duplicate(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("e1", "a1", 10, T0)])
    pipeline.build_silver("payment_transaction", "run-1")
    land(
        lake,
        "payment.transaction",
        [
            payment("e1", "a1", 20, T0 + DAY, source="/devices/other"),
            payment("e1", "a1", 30, T0 + 2 * DAY, source="/devices/third"),
        ],
    )

    outcome = pipeline.build_silver("payment_transaction", "run-2")

    assert [(row[0], row[1]) for row in _silver(lake)] == [
        ("/devices/other", "e1"),
        ("/devices/test", "e1"),
        ("/devices/third", "e1"),
    ]
    assert _counts(outcome) == (2, 2, 0, 0)


def test_a_quarantined_resend_is_counted_as_quarantined_not_as_a_duplicate(lake: Path) -> None:
    pipeline = medallion_for(lake)
    land(lake, "payment.transaction", [payment("e1", "a1", 10, T0)])
    pipeline.build_silver("payment_transaction", "run-1")
    land(lake, "payment.transaction", [payment("e1", "a1", 10, T0 + DAY, currency="eur")])

    outcome = pipeline.build_silver("payment_transaction", "run-2")

    assert [row[1:3] for row in _silver(lake)] == [("e1", T0.date())]
    assert _counts(outcome) == (1, 0, 0, 1)


def test_a_rerun_over_the_same_bronze_after_a_lost_watermark_adds_nothing(lake: Path) -> None:
    land(
        lake,
        "payment.transaction",
        [payment("e1", "a1", 10, T0), payment("e2", "a1", 10, T0 + DAY)],
    )
    medallion_for(lake).build_silver("payment_transaction", "run-1")
    forget_watermarks(lake)  # the next run starts from bronze 0

    outcome = medallion_for(lake).build_silver("payment_transaction", "run-2")

    assert [row[1] for row in _silver(lake)] == ["e1", "e2"]
    assert _counts(outcome) == (2, 0, 2, 0)


def forget_watermarks(lake: Path) -> None:
    state = DocumentStore(lake.parent / f"{lake.name}-state.sqlite").container(STATE_CONTAINER)
    for document in state.query(Query(cross_partition=True)).documents:
        state.delete(document["id"], document["pipeline"])
