"""Input quality: bounds from the contracts, nulls and out-of-range counts, the regression flag."""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events.contracts import IOT_TELEMETRY, PAYMENT_TRANSACTION, Contract
from shared.monitoring.quality import (
    TOLERANCE,
    UNBOUNDED,
    Bounds,
    column_quality,
    contract_bounds,
    input_quality,
)

pytestmark = pytest.mark.unit


class Reading(msgspec.Struct):
    sensor: str
    level: Annotated[float, msgspec.Meta(gt=0, lt=10)]
    count: Annotated[int, msgspec.Meta(ge=1)]
    free: float


READING = Contract(event_type="test.reading", version=1, data=Reading, entity_key="sensor")


def test_bounds_come_from_the_contracts_types() -> None:
    assert contract_bounds(PAYMENT_TRANSACTION) == {"amount": Bounds(lower=0.0, upper=1e15)}
    assert contract_bounds(IOT_TELEMETRY) == {
        "temperature_c": Bounds(lower=-273.15, upper=1e5),
        "vibration_mm_s": Bounds(lower=0.0, upper=1e9),
        "pressure_kpa": Bounds(lower=0.0, upper=1e9),
        "rpm": Bounds(lower=0.0, upper=1e9),
    }
    assert contract_bounds(READING) == {
        "level": Bounds(lower=0.0, upper=10.0, lower_inclusive=False, upper_inclusive=False),
        "count": Bounds(lower=1.0),
    }


def test_exclusive_and_one_sided_bounds() -> None:
    bounds = contract_bounds(READING)
    level = np.array([0.0, 1e-300, 5.0, 10.0, 9.999, np.nan, np.inf])
    assert bounds["level"].outside(level).tolist() == [1, 0, 0, 1, 0, 0, 1]
    count = np.array([0.0, 1.0, 1e300, -np.inf, np.nan])
    assert bounds["count"].outside(count).tolist() == [1, 0, 0, 1, 0]
    assert UNBOUNDED.outside(np.array([-1e308, np.inf, np.nan])).tolist() == [0, 1, 0]


def test_nulls_and_values_out_of_the_contracts_range_are_counted() -> None:
    amount = contract_bounds(PAYMENT_TRANSACTION)["amount"]
    current = np.array([10.0, np.nan, np.nan, -0.01, 2e15, np.inf, 0.0, 1e15])
    quality = column_quality("amount", np.array([1.0, 2.0]), current, amount)
    assert (quality.rows, quality.nulls, quality.out_of_range) == (8, 2, 3)
    assert quality.null_rate == 0.25 and quality.out_of_range_rate == 3 / 8
    assert (quality.lower, quality.upper) == (0.0, 1e15)
    assert quality.regressed


def test_a_column_regresses_past_the_tolerance_only() -> None:
    reference = np.where(np.arange(1_000) < 20, np.nan, 1.0)  # 2% nulls
    within = np.where(np.arange(1_000) < 20 + 1_000 * TOLERANCE, np.nan, 1.0)
    beyond = np.where(np.arange(1_000) < 21 + 1_000 * TOLERANCE, np.nan, 1.0)
    assert not column_quality("x", reference, within).regressed
    assert column_quality("x", reference, beyond).regressed
    assert not column_quality("x", beyond, reference).regressed  # it got better


def test_hostile_columns() -> None:
    all_null = column_quality("x", np.ones(10), np.full(10, np.nan))
    assert all_null.null_rate == 1.0 and all_null.regressed
    empty = column_quality("x", np.array([]), np.array([]))
    assert (empty.rows, empty.null_rate, empty.out_of_range_rate, empty.regressed) == (
        0,
        0.0,
        0.0,
        False,
    )
    huge = column_quality("x", np.ones(3), np.array([1e300, -1e300, 253402300799.0]))
    assert huge.out_of_range == 0  # a derived feature has no bounds but finiteness


def test_input_quality_covers_every_column_with_its_bounds() -> None:
    reference = {"amount": np.ones(4), "count_10m": np.ones(4)}
    current = {"amount": np.array([-1.0, 1, 1, 1]), "count_10m": np.array([-1.0, 1, 1, 1])}
    found = input_quality(reference, current, contract_bounds(PAYMENT_TRANSACTION))
    assert [(q.column, q.out_of_range) for q in found] == [("amount", 1), ("count_10m", 0)]


@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True)),
    st.lists(st.floats(allow_nan=True, allow_infinity=True)),
)
def test_counts_and_rates_stay_in_range_for_any_values(
    reference: list[float], current: list[float]
) -> None:
    bounds = Bounds(lower=-1.0, upper=1.0)
    quality = column_quality("x", np.array(reference), np.array(current), bounds)
    assert quality.nulls + quality.out_of_range <= quality.rows == len(current)
    assert 0.0 <= quality.null_rate <= 1.0 and 0.0 <= quality.out_of_range_rate <= 1.0
    assert b"NaN" not in msgspec.json.encode(quality)
