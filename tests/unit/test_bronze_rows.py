"""Bronze schemas come from the contracts; rows are built as Arrow columns, PII pseudonymized."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events.contracts import APP_INTERACTION, IOT_TELEMETRY, PAYMENT_TRANSACTION
from shared.events.envelope import EventDecoder
from shared.events.errors import EventRejected, Reason
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.bronze_rows import (
    ContractRows,
    DeadLetterRows,
    Position,
    Rejection,
    timestamps,
)
from shared.lakehouse.bronze_schema import DEADLETTER_SCHEMA, LINEAGE, TIMESTAMP, bronze_schema
from tests.eventdata import card, encoded, payment, telemetry

pytestmark = pytest.mark.unit

P = Pseudonymizer(b"k" * 32)
DECODER = EventDecoder()
ENQUEUED = dt.datetime(2024, 5, 3, 8, 0, tzinfo=dt.UTC)
INGESTED = dt.datetime(2024, 5, 3, 8, 0, 5, tzinfo=dt.UTC)
POSITION = Position("local", "events", "$default", 2)


def test_schemas_follow_the_contracts() -> None:
    payment_schema = bronze_schema(PAYMENT_TRANSACTION)
    assert payment_schema.names[: len(LINEAGE)] == [f.name for f in LINEAGE]
    assert payment_schema.field("amount").type == pa.float64()
    assert payment_schema.field("card_number").type == pa.string()
    assert payment_schema.field("card_last4").type == pa.string()
    scoring = ["score", "model_name", "model_version", "score_reason"]
    assert payment_schema.names[-7:] == ["extras", "extensions", "event_date", *scoring]
    assert bronze_schema(IOT_TELEMETRY).field("rpm").type == pa.float64()
    assert bronze_schema(IOT_TELEMETRY).names[-4:] == scoring
    interactions = bronze_schema(APP_INTERACTION)  # no model scores interactions
    assert interactions.field("action").type == pa.string()
    assert interactions.names[-3:] == ["extras", "extensions", "event_date"]


def test_rows_carry_lineage_and_pseudonyms() -> None:
    events = [DECODER.decode(encoded(payment(n))) for n in (1, 2)]
    table = ContractRows(PAYMENT_TRANSACTION, P).table(
        events, [10, 11], [ENQUEUED, ENQUEUED], 2, INGESTED
    )
    assert table.schema == bronze_schema(PAYMENT_TRANSACTION)
    first = table.to_pylist()[0]
    assert first["event_id"] == events[0].envelope.id
    assert (first["event_type"], first["schema_version"]) == ("payment.transaction", 1)
    assert (first["partition"], first["sequence_number"]) == (2, 10)
    assert first["enqueued_time"] == ENQUEUED and first["ingested_at"] == INGESTED
    assert first["card_number"] == P.pseudonym(card(1))
    assert first["card_last4"] == card(1)[-4:]
    assert first["event_date"] == dt.date(2024, 5, 1)
    assert card(1) not in json.dumps(table.to_pylist(), default=str)


def test_event_time_falls_back_to_the_enqueued_time_and_is_utc() -> None:
    without = telemetry()
    del without["time"]
    offset = telemetry()
    offset["time"] = "2024-05-01T23:30:00-02:00"
    events = [DECODER.decode(encoded(e)) for e in (without, offset)]
    rows = ContractRows(IOT_TELEMETRY, P).table(events, [0, 1], [ENQUEUED] * 2, 0, INGESTED)
    times = rows.column("event_time").to_pylist()
    assert times[0] == ENQUEUED
    assert times[1] == dt.datetime(2024, 5, 2, 1, 30, tzinfo=dt.UTC)
    assert rows.column("event_date").to_pylist() == [dt.date(2024, 5, 3), dt.date(2024, 5, 2)]


def test_extras_are_kept_with_card_numbers_pseudonymized() -> None:
    event = payment(1, note=f"paid with {card(9)}", tip=2)
    event["traceid"] = "abc"
    decoded = DECODER.decode(encoded(event))
    row = ContractRows(PAYMENT_TRANSACTION, P).table([decoded], [0], [ENQUEUED], 0, INGESTED)
    extras = json.loads(row.column("extras")[0].as_py())
    assert extras["tip"] == 2 and card(9) not in extras["note"]
    assert json.loads(row.column("extensions")[0].as_py()) == {"traceid": "abc"}


def rejected(body: bytes) -> Rejection:
    try:
        DECODER.decode(body)
    except EventRejected as error:
        return Rejection(error, body, 7, 700, ENQUEUED)
    raise AssertionError("the event was valid")


def test_dead_letters_keep_the_reason_and_position_without_raw_cards() -> None:
    bad_card = "4111111111111112"  # fails Luhn, and is still never stored raw
    bodies = [
        encoded(payment(1, card_number=bad_card)),
        encoded(payment(2, currency="ZZZ", note=card(2))),
        f"not json {card(3)}".encode(),
        b"\xff\xfe" + card(4).encode(),
    ]
    table = DeadLetterRows(DECODER.registry, P).table(
        [rejected(b) for b in bodies], POSITION, INGESTED
    )
    assert table.schema == DEADLETTER_SCHEMA
    rows = table.to_pylist()
    assert [r["reason"] for r in rows] == [
        Reason.INVALID_DATA,
        Reason.INVALID_DATA,
        Reason.MALFORMED_JSON,
        Reason.NOT_UTF8,  # whichever msgspec is installed (0.23 calls it malformed JSON)
    ]
    assert rows[0]["event_type"] == "payment.transaction"
    assert json.loads(rows[0]["payload"])["data"]["card_number"] == P.pseudonym(bad_card)
    assert (rows[0]["hub"], rows[0]["partition"], rows[0]["sequence_number"]) == ("events", 2, 7)
    assert rows[0]["event_date"] == ENQUEUED.date()
    dumped = json.dumps(rows, default=str)
    for raw in (bad_card, card(2), card(3), card(4)):
        assert raw not in dumped


MINUTE_OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
ZONES: st.SearchStrategy[dt.tzinfo] = st.one_of(
    MINUTE_OFFSETS,
    st.just(dt.UTC),
    st.integers(-86_399, 86_399).map(lambda s: dt.timezone(dt.timedelta(seconds=s))),
)
MOMENTS = st.one_of(
    st.datetimes(min_value=dt.datetime.min, max_value=dt.datetime.max, timezones=ZONES),
    st.datetimes(min_value=dt.datetime.min, max_value=dt.datetime.max),  # naive: taken as UTC
)


@given(st.lists(MOMENTS, max_size=40))
def test_timestamps_are_the_utc_instants_arrow_computes(values: list[dt.datetime]) -> None:
    assert timestamps(values).equals(pa.array(values, TIMESTAMP))


@given(MOMENTS, st.integers(1, 50))
def test_one_repeated_moment_is_one_timestamp(moment: dt.datetime, count: int) -> None:
    assert timestamps([moment] * count).equals(pa.array([moment] * count, TIMESTAMP))


PAN = "4920777766665550"


def digits_only(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def test_card_numbers_in_attributes_identifiers_and_extensions_are_pseudonymized() -> None:
    event = payment(
        1, merchant_id=f"m-{PAN}", account_id="4920 7777 6666 5550", note="4011777766665550.5"
    )
    event.update(
        id=PAN,
        source="/cards/4920  7777.6666-5550 1/27",
        subject="4920.7777.6666.5550",
        traceid=f"{PAN}-1",
    )
    raw = encoded(event).replace(b'"4011777766665550.5"', b"4011777766665550.5")
    decoded = DECODER.decode(raw)
    row = ContractRows(PAYMENT_TRANSACTION, P).table([decoded], [0], [ENQUEUED], 0, INGESTED)
    [values] = row.to_pylist()
    token = "pseudonym:" + P.pseudonym(PAN)
    assert values["event_id"] == token and values["subject"] == token
    assert values["source"] == f"/cards/{token} 1/27"
    assert values["merchant_id"] == f"m-{token}" and values["account_id"] == token
    text = json.dumps(values, default=str)
    assert PAN not in digits_only(text.replace(token, ""))
    assert "4011777766665550" not in text


def test_a_protected_events_pseudonyms_and_kept_part_are_stored_as_they_are() -> None:
    protected = payment(1)
    protected["data"]["card_number"] = P.pseudonym(card(1))
    protected["data"]["card_last4"] = card(1)[-4:]
    raw = payment(2)
    groups, failed = DECODER.decode_batch(
        [encoded(protected), encoded(raw)], protected=[True, False]
    )
    assert failed == []
    [group] = groups.values()
    assert group.protected == [True, False]
    assert PAYMENT_TRANSACTION.violations([e.data for e in group.envelopes], group.protected) == {}
    table = ContractRows(PAYMENT_TRANSACTION, P).build(
        group.envelopes, [0, 1], [ENQUEUED] * 2, 0, INGESTED, protected=group.protected
    )
    assert table.column("card_number").to_pylist() == [P.pseudonym(card(1)), P.pseudonym(card(2))]
    assert table.column("card_last4").to_pylist() == [card(1)[-4:], card(2)[-4:]]


def test_a_raw_card_number_in_a_protected_event_is_refused() -> None:
    event = payment(1)
    event["data"]["card_last4"] = "5550"
    groups, failed = DECODER.decode_batch([encoded(event)], protected=[True])
    assert groups == {}
    [(index, error)] = failed
    assert error.reason == Reason.INVALID_DATA and "card_number" in error.message
