"""Landing file records against their contract: typing, extras, event time, ids and rejections."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events.contracts import PAYMENT_TRANSACTION, Contract
from shared.events.errors import Reason
from shared.events.pseudonymize import Pseudonymizer
from shared.files.records import FileRecord, FileReject
from shared.landing.records import RecordChecker, reader_reason
from tests.eventdata import card
from tests.landingdata import payment_record

pytestmark = pytest.mark.unit

KEY = Pseudonymizer(b"k" * 32)
ARRIVED = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
SOURCE = "landing/payment.transaction/day1.csv"


def as_text(record: dict[str, Any]) -> dict[str, Any]:
    """The record as a CSV row gives it: every value text, empty cells None."""
    return {k: None if v is None else str(v) for k, v in record.items()}


def check(
    records: list[dict[str, Any]], *, text: bool = True, checker: RecordChecker | None = None
):
    checker = checker or RecordChecker(PAYMENT_TRANSACTION, KEY)
    numbered = [FileRecord(line, data) for line, data in enumerate(records, start=2)]
    return checker.check(numbered, 1, SOURCE, ARRIVED, text_values=text)


def test_csv_text_is_typed_by_the_contract() -> None:
    out = check([as_text(payment_record(1, amount="12.50"))])
    assert out.rejections == [] and out.lines == [2]
    event = out.events[0]
    assert event.contract is PAYMENT_TRANSACTION
    assert event.envelope.data.amount == 12.5
    assert event.envelope.source == SOURCE
    assert event.envelope.time is None  # the file's arrival time stands in
    assert event.extras is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": None}, "missing required field `amount`"),
        ({"amount": "12,50"}, "Expected `float`, got `str` - at `$.amount`"),
        ({"amount": "-1"}, ">= 0.0"),
        ({"currency": "XXX"}, "$.currency"),
        ({"card_number": "4111111111111112"}, "not a valid card number"),
    ],
)
def test_bad_values_are_rejected_with_the_reason(fields: dict[str, Any], message: str) -> None:
    out = check([as_text(payment_record(1)), as_text(payment_record(2, **fields))])
    assert out.lines == [2]
    [rejection] = out.rejections
    assert rejection.sequence_number == 3
    assert rejection.error.reason is Reason.INVALID_DATA
    assert message in rejection.error.message
    assert rejection.error.contract == "payment.transaction"


def test_json_values_keep_their_types_and_must_match() -> None:
    out = check([payment_record(1), payment_record(2, amount="12.5")], text=False)
    assert out.lines == [2]
    assert "Expected `float`, got `str`" in out.rejections[0].error.message


def test_unknown_fields_are_kept_as_extras() -> None:
    out = check([as_text(payment_record(1, note="hi", terminal="t-9"))])
    assert out.events[0].extras == {"note": "hi", "terminal": "t-9"}


def test_a_time_column_is_the_event_time_and_must_have_an_offset() -> None:
    out = check(
        [
            as_text(payment_record(1, time="2024-04-30T23:30:00-02:00")),
            as_text(payment_record(2, time=None)),
            as_text(payment_record(3, time="2024-04-30 23:30")),
        ]
    )
    assert [e.envelope.time for e in out.events] == [
        dt.datetime(2024, 5, 1, 1, 30, tzinfo=dt.UTC),
        None,
    ]
    assert all(e.extras is None for e in out.events)
    [rejection] = out.rejections
    assert rejection.error.reason is Reason.INVALID_ENVELOPE
    assert "time must be an RFC 3339 timestamp" in rejection.error.message


class Reading(msgspec.Struct, frozen=True):
    sensor: str
    taken_at: Annotated[dt.datetime, msgspec.Meta(tz=True)]


READING = Contract(event_type="test.reading", version=1, data=Reading, entity_key="sensor")


def test_a_contract_timestamp_field_is_the_event_time() -> None:
    checker = RecordChecker(READING, KEY)
    out = check([{"sensor": "s1", "taken_at": "2024-01-02T03:04:05Z"}], checker=checker)
    assert out.events[0].envelope.time == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_event_ids_are_the_line_and_a_keyed_hash_of_the_content() -> None:
    record = as_text(payment_record(1))
    first = check([record]).events[0].envelope.id
    assert first == check([dict(record)]).events[0].envelope.id
    assert first.startswith("2-") and len(first) == len("2-") + 16
    changed = check([{**record, "amount": "99"}]).events[0].envelope.id
    other_key = RecordChecker(PAYMENT_TRANSACTION, Pseudonymizer(b"x" * 32))
    assert changed != first
    assert check([record], checker=other_key).events[0].envelope.id != first
    assert record["card_number"] not in first


def test_identical_records_on_one_line_get_distinct_ids() -> None:
    checker = RecordChecker(PAYMENT_TRANSACTION, KEY)
    same = [FileRecord(1, payment_record(1)), FileRecord(1, payment_record(1))]
    out = checker.check(same, 7, SOURCE, ARRIVED, text_values=False)
    assert out.lines == [1, 1] and out.ordinals == [7, 8]
    assert len({event.envelope.id for event in out.events}) == 2


def test_rejections_are_shaped_as_events_for_the_dead_letter_table() -> None:
    bad = as_text(payment_record(1, card_number="4111111111111112"))
    [rejection] = check([bad]).rejections
    body = msgspec.json.decode(rejection.body)
    assert body["source"] == SOURCE and body["type"] == "payment.transaction"
    assert body["id"].startswith("2-") and body["data"] == bad
    assert rejection.enqueued_time == ARRIVED and rejection.offset is None


def test_unreadable_records_keep_their_line_reason_and_text() -> None:
    checker = RecordChecker(PAYMENT_TRANSACTION, KEY)
    rejects = [FileReject(4, "not UTF-8 at byte 3", b"ab\xffcd"), FileReject(0, "no header")]
    first, whole = checker.unreadable(rejects, 1, SOURCE, ARRIVED)
    assert first.error.reason is Reason.NOT_UTF8 and first.sequence_number == 4
    assert whole.error.reason is Reason.UNSUPPORTED_FILE
    assert msgspec.json.decode(first.body)["data"] == "ab\ufffdcd"
    assert whole.sequence_number == 0 and "id" not in msgspec.json.decode(whole.body)


@pytest.mark.parametrize(
    ("problem", "reason"),
    [
        ("not UTF-8 at byte 0", Reason.NOT_UTF8),
        ("invalid JSON: truncated", Reason.MALFORMED_JSON),
        ("JSON nested too deeply", Reason.MALFORMED_JSON),
        ("malformed JSON file: trailing comma", Reason.MALFORMED_JSON),
        ("not a JSON object but list", Reason.NOT_AN_EVENT),
        ("has 3 fields, the header has 9", Reason.UNREADABLE_RECORD),
        ("line longer than 1 MiB", Reason.UNREADABLE_RECORD),
    ],
)
def test_reader_problems_map_to_reasons(problem: str, reason: Reason) -> None:
    assert reader_reason(problem) is reason


values = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.sampled_from(["EUR", "pos", "5411", "FR", card(3), "1e400", "nan", "-0", "ÿ"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
records = st.lists(
    st.dictionaries(
        st.sampled_from([*payment_record(0), "time", "extra", ""]) | st.text(max_size=8),
        values,
        max_size=12,
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(records, st.booleans())
def test_every_record_becomes_an_event_or_a_rejection(
    batch: list[dict[str, Any]], text: bool
) -> None:
    out = check(batch, text=text)
    assert len(out.events) + len(out.rejections) == len(batch)
    assert sorted(out.lines + [r.sequence_number for r in out.rejections]) == list(
        range(2, 2 + len(batch))
    )
    for rejection in out.rejections:
        assert rejection.error.message and rejection.error.reason in Reason
