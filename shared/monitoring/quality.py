"""The quality of a model's inputs over a window: nulls and out-of-range values per column, and
whether either got worse than in the reference window.

A null is a NaN (what a null becomes in a float column). Out of range is an infinity anywhere,
or a finite value outside the bounds its event contract declares: a feature named as a
contract field (`amount`, `temperature_c`...) is that field's value, so it gets that field's
bounds (`contract_bounds`); a derived feature (a count, a mean) has none of its own, and only
infinities count.

A column regresses when its share of nulls, or of values out of range, exceeds the reference
window's by more than `TOLERANCE`: a broken upstream field shows at once, while a stray row
or two does not.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import numpy as np

from shared.events.contracts import Contract

TOLERANCE = 0.01  # one percentage point of the window's rows


class Bounds(msgspec.Struct, frozen=True, kw_only=True):
    """The range a contract accepts for a numeric field; a missing side is unbounded."""

    lower: float | None = None
    upper: float | None = None
    lower_inclusive: bool = True
    upper_inclusive: bool = True

    def outside(self, values: np.ndarray) -> np.ndarray:
        """Which values are infinite or outside the bounds (NaN is neither)."""
        bad: np.ndarray = np.isinf(values)
        if self.lower is not None:
            bad |= values < self.lower if self.lower_inclusive else values <= self.lower
        if self.upper is not None:
            bad |= values > self.upper if self.upper_inclusive else values >= self.upper
        return bad


UNBOUNDED = Bounds()


def contract_bounds(contract: Contract) -> dict[str, Bounds]:
    """The bounds the contract's types declare, per numeric field that has any."""
    info = msgspec.inspect.type_info(contract.data)
    assert isinstance(info, msgspec.inspect.StructType)
    found = {}
    for field in info.fields:
        kind = field.type
        while isinstance(kind, msgspec.inspect.Metadata):
            kind = kind.type
        if not isinstance(kind, msgspec.inspect.FloatType | msgspec.inspect.IntType):
            continue
        lower, upper = _side(kind.ge, kind.gt), _side(kind.le, kind.lt)
        if lower is None and upper is None:
            continue
        found[field.name] = Bounds(
            lower=lower,
            upper=upper,
            lower_inclusive=kind.gt is None,
            upper_inclusive=kind.lt is None,
        )
    return found


def _side(inclusive: float | None, exclusive: float | None) -> float | None:
    bound = inclusive if inclusive is not None else exclusive
    return None if bound is None else float(bound)


class ColumnQuality(msgspec.Struct, frozen=True, kw_only=True):
    """One input column over the current window, beside its rates in the reference window."""

    column: str
    rows: int
    nulls: int
    out_of_range: int
    null_rate: float
    out_of_range_rate: float
    reference_null_rate: float
    reference_out_of_range_rate: float
    lower: float | None = None
    upper: float | None = None
    regressed: bool


def _counts(values: np.ndarray, bounds: Bounds) -> tuple[int, int, int]:
    array = np.asarray(values, dtype=np.float64).ravel()
    nulls = int(np.count_nonzero(np.isnan(array)))
    return array.size, nulls, int(np.count_nonzero(bounds.outside(array)))


def _rate(count: int, rows: int) -> float:
    return count / rows if rows else 0.0


def column_quality(
    column: str, reference: np.ndarray, current: np.ndarray, bounds: Bounds = UNBOUNDED
) -> ColumnQuality:
    """Nulls and out-of-range values of a column in the current window, and the regression
    flag against the reference window."""
    ref_rows, ref_nulls, ref_outside = _counts(reference, bounds)
    rows, nulls, outside = _counts(current, bounds)
    null_rate, outside_rate = _rate(nulls, rows), _rate(outside, rows)
    ref_null_rate, ref_outside_rate = _rate(ref_nulls, ref_rows), _rate(ref_outside, ref_rows)
    return ColumnQuality(
        column=column,
        rows=rows,
        nulls=nulls,
        out_of_range=outside,
        null_rate=null_rate,
        out_of_range_rate=outside_rate,
        reference_null_rate=ref_null_rate,
        reference_out_of_range_rate=ref_outside_rate,
        lower=bounds.lower,
        upper=bounds.upper,
        regressed=(
            null_rate > ref_null_rate + TOLERANCE or outside_rate > ref_outside_rate + TOLERANCE
        ),
    )


def input_quality(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    bounds: Mapping[str, Bounds],
) -> tuple[ColumnQuality, ...]:
    """`column_quality` for every column of the current window."""
    return tuple(
        column_quality(name, reference[name], values, bounds.get(name, UNBOUNDED))
        for name, values in current.items()
    )
