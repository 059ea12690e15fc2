"""What the lake can hold: the event time window and the typed fields' ranges, by property."""

from __future__ import annotations

import datetime as dt
import math

import msgspec
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events.contracts import IOT_TELEMETRY, Contract
from shared.events.envelope import EventDecoder
from shared.events.errors import EventRejected, Reason
from shared.events.pseudonymize import Pseudonymizer
from shared.events.representable import (
    EARLIEST_EVENT_TIME,
    INT64_MAX,
    INT64_MIN,
    MAX_CLOCK_SKEW,
    EventTimeWindow,
)
from shared.lakehouse.bronze_rows import ContractRows
from shared.lakehouse.bronze_schema import TIMESTAMP
from tests.eventdata import encoded, telemetry

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DECODER = EventDecoder(clock=lambda: NOW)
ROWS = ContractRows(IOT_TELEMETRY, Pseudonymizer(b"k" * 32))
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
MOMENTS = st.datetimes(
    dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59), timezones=OFFSETS
)


@given(MOMENTS)
def test_an_event_time_is_accepted_exactly_in_the_window_and_then_lands(
    moment: dt.datetime,
) -> None:
    event = telemetry(1)
    event["time"] = moment.isoformat()
    inside = EARLIEST_EVENT_TIME <= moment <= NOW + MAX_CLOCK_SKEW
    groups, rejected = DECODER.decode_batch([encoded(event)])
    assert [error.reason for _, error in rejected] == ([] if inside else [Reason.OUT_OF_RANGE])
    try:
        decoded = DECODER.decode(encoded(event))
    except EventRejected as error:
        assert not inside and error.reason is Reason.OUT_OF_RANGE
        return
    assert inside
    [group] = groups.values()
    assert group.envelopes == [decoded.envelope]
    rows = ROWS.build([decoded.envelope], [0], [NOW], 0, NOW)  # never overflows
    assert rows.column("event_date")[0].as_py() == moment.astimezone(dt.UTC).date()


@given(st.one_of(MOMENTS, st.datetimes()))
def test_the_window_never_raises(moment: dt.datetime) -> None:
    problem = EventTimeWindow(NOW).problem(moment)
    assert problem is None or "window" in problem


class Counted(msgspec.Struct):
    id: str
    count: int
    seen: dt.datetime | None = None
    ratio: float = 0.0


COUNTED = Contract("test.counted", 1, Counted, "id")


@given(st.integers(-(2**70), 2**70))
def test_an_integer_field_is_accepted_exactly_in_int64(value: int) -> None:
    problem = COUNTED.violation(Counted("a", value))
    assert (problem is None) == (INT64_MIN <= value <= INT64_MAX)


@given(MOMENTS)
def test_a_datetime_field_is_accepted_only_when_it_converts_to_utc(moment: dt.datetime) -> None:
    problem = COUNTED.violation(Counted("a", 1, moment))
    if dt.datetime(2, 1, 1, tzinfo=dt.UTC) <= moment <= dt.datetime(9998, 12, 31, tzinfo=dt.UTC):
        assert problem is None
    if problem is None:
        assert pa.array([moment], TIMESTAMP)[0].as_py() == moment
    else:
        assert "outside years 1 to 9999" in problem


@given(st.floats())
def test_a_float_field_is_accepted_when_finite(value: float) -> None:
    problem = COUNTED.violation(Counted("a", 1, None, value))
    assert (problem is None) == math.isfinite(value)


@given(st.lists(st.one_of(st.none(), MOMENTS), max_size=30))
def test_the_times_outside_a_batch_are_those_outside_one_by_one(
    times: list[dt.datetime | None],
) -> None:
    window = EventTimeWindow(NOW)
    expected = [i for i, t in enumerate(times) if window.problem(t) is not None]
    assert window.outside(times) == expected
