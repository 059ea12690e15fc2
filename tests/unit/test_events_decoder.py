"""Decoding CloudEvents against the contracts: valid events, every rejection, hostile input."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events.contracts import CONTRACTS, PAYMENT_TRANSACTION, Contract, ContractRegistry
from shared.events.envelope import EventDecoder
from shared.events.errors import EventRejected, Reason
from tests.eventdata import encoded, interaction, payment, telemetry

pytestmark = pytest.mark.unit

DECODER = EventDecoder()


def rejection(body: bytes) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        DECODER.decode(body)
    return caught.value


@pytest.mark.parametrize("event", [payment(), telemetry(), interaction()])
def test_valid_events_decode_to_their_contract(event: dict[str, Any]) -> None:
    decoded = DECODER.decode(encoded(event))
    assert decoded.contract.event_type == event["type"]
    assert decoded.envelope.id == event["id"]
    assert decoded.envelope.time == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    for name, value in event["data"].items():
        assert getattr(decoded.envelope.data, name) == value
    assert decoded.extras is None and decoded.extensions is None


def test_attribute_order_does_not_matter() -> None:
    event = payment()
    reordered = {"data": event["data"], **{k: v for k, v in event.items() if k != "data"}}
    assert DECODER.decode(encoded(reordered)).envelope.id == event["id"]


def test_unknown_data_fields_and_extensions_are_kept() -> None:
    event = payment(tip=2.5, note={"a": [1]})
    event["traceparent"] = "00-abc-def-01"
    decoded = DECODER.decode(encoded(event))
    assert decoded.extras == {"tip": 2.5, "note": {"a": [1]}}
    assert decoded.extensions == {"traceparent": "00-abc-def-01"}
    assert decoded.envelope.data.amount == event["data"]["amount"]


def test_time_subject_and_content_type_are_optional_and_checked() -> None:
    event = telemetry()
    del event["time"]
    assert DECODER.decode(encoded(event)).envelope.time is None
    assert DECODER.decode(encoded({**event, "subject": "dev-9"})).envelope.subject == "dev-9"
    assert rejection(encoded({**event, "time": "2024-05-01T12:00:00"})).reason is (
        Reason.INVALID_ENVELOPE
    )
    assert rejection(encoded({**event, "datacontenttype": "text/xml"})).reason is (
        Reason.INVALID_ENVELOPE
    )


def test_offsets_in_time_are_kept_as_aware_times() -> None:
    event = telemetry(time="2024-05-01T23:30:00-02:00")
    event["time"] = "2024-05-01T23:30:00-02:00"
    moment = DECODER.decode(encoded(event)).envelope.time
    assert moment.astimezone(dt.UTC) == dt.datetime(2024, 5, 2, 1, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", Reason.MALFORMED_JSON),
        (b'{"id": "x"', Reason.MALFORMED_JSON),
        (b'"\xff\xfe"', Reason.NOT_UTF8),
        (b"[1, 2]", Reason.NOT_AN_EVENT),
        (b"42", Reason.NOT_AN_EVENT),
        (encoded({**payment(), "specversion": "0.3"}), Reason.INVALID_ENVELOPE),
        (encoded({**payment(), "type": "no.such"}), Reason.UNKNOWN_TYPE),
        (encoded({**payment(), "type": 7}), Reason.INVALID_ENVELOPE),
        (encoded({**payment(), "id": ""}), Reason.INVALID_ENVELOPE),
        (encoded({**payment(), "source": None}), Reason.INVALID_ENVELOPE),
        (encoded({**payment(), "data": [1]}), Reason.INVALID_DATA),
        (encoded({**payment(), "data_base64": "AAAA"}), Reason.INVALID_ENVELOPE),
        (encoded({**payment(), "Bad-Name": 1}), Reason.INVALID_ENVELOPE),
        (encoded({**payment(), "ext": {"nested": 1}}), Reason.INVALID_ENVELOPE),
        (
            encoded({**payment(), "dataschema": "urn:contract:payment.transaction:9"}),
            Reason.UNKNOWN_VERSION,
        ),
    ],
)
def test_rejections_carry_a_reason(body: bytes, reason: Reason) -> None:
    assert rejection(body).reason is reason


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"card_number": "4111111111111112"}, "card_number"),
        ({"card_number": "4111-1111-1111-1111"}, "card_number"),
        ({"card_number": 4111111111111111}, "card_number"),
        ({"amount": -1}, "amount"),
        ({"amount": 1e300}, "amount"),
        ({"amount": "12.5"}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "ZZZ"}, "currency"),
        ({"country": "UK"}, "country"),
        ({"merchant_category": "541"}, "merchant_category"),
        ({"merchant_category": 5411}, "merchant_category"),
        ({"channel": "phone"}, "channel"),
        ({"account_id": ""}, "account_id"),
        ({"account_id": "a" * 129}, "account_id"),
    ],
)
def test_payment_contract_violations(data: dict[str, Any], field: str) -> None:
    error = rejection(encoded(payment(**data)))
    assert error.reason is Reason.INVALID_DATA
    assert field in error.message
    assert error.contract == "payment.transaction"


def test_a_missing_field_is_a_violation() -> None:
    event = telemetry()
    del event["data"]["rpm"]
    assert "rpm" in rejection(encoded(event)).message


def test_messages_never_quote_the_card_number() -> None:
    for card_value in ("4111111111111112", "41111111111", "4111111111111111111111"):
        error = rejection(encoded(payment(card_number=card_value)))
        assert card_value not in str(error)


def test_an_explicit_dataschema_selects_the_version() -> None:
    event = {**payment(), "dataschema": PAYMENT_TRANSACTION.dataschema}
    assert DECODER.decode(encoded(event)).contract is PAYMENT_TRANSACTION


def test_older_contract_versions_still_decode() -> None:
    older = Contract(
        event_type="payment.transaction",
        version=0,
        data=PAYMENT_TRANSACTION.data,
        entity_key="account_id",
    )
    decoder = EventDecoder(ContractRegistry((*CONTRACTS, older)))
    event = {**payment(), "dataschema": older.dataschema}
    assert decoder.decode(encoded(event)).contract is older
    assert decoder.decode(encoded(payment())).contract is PAYMENT_TRANSACTION


# hostile input -------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def decodes_or_rejects(body: bytes) -> None:
    try:
        decoded = DECODER.decode(body)
    except EventRejected as error:
        assert isinstance(error.reason, Reason)
        assert len(error.message) <= 300
    else:
        assert decoded.contract is not None


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_decoded_or_rejected(body: bytes) -> None:
    decodes_or_rejects(body)


@given(json_values)
def test_arbitrary_json_is_decoded_or_rejected(value: Any) -> None:
    decodes_or_rejects(json.dumps(value).encode())


@given(
    st.sampled_from([payment, telemetry, interaction]),
    st.data(),
    json_values,
)
def test_any_field_with_any_value_is_decoded_or_rejected(
    make: Any, data: st.DataObject, value: Any
) -> None:
    event = make()
    where = data.draw(st.sampled_from(["envelope", "data"]))
    target = event if where == "envelope" else event["data"]
    name = data.draw(st.sampled_from(sorted(target)))
    target[name] = value
    decodes_or_rejects(json.dumps(event).encode())


@pytest.mark.parametrize("depth", [100, 10_000, 200_000])
def test_deep_nesting_is_rejected_not_a_crash(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    body = encoded(payment()).replace(b'"pos"', nested)
    decodes_or_rejects(body)
    decodes_or_rejects(nested)
    decodes_or_rejects(b'{"a":' * depth + b"1" + b"}" * depth)


@pytest.mark.parametrize(
    "number", [b"1e999", b"-1e999", b"123456789012345678901234567890", b"NaN", b"Infinity"]
)
def test_huge_and_non_finite_numbers_are_rejected(number: bytes) -> None:
    body = encoded(payment()).replace(b'"amount": 11.0', b'"amount": ' + number)
    assert b'"amount": ' + number in body
    error = rejection(body)
    assert error.reason in (Reason.INVALID_DATA, Reason.MALFORMED_JSON)


@pytest.mark.parametrize(
    "text",
    [b'"\\ud800"', b'"\\udfff\\ud800"', b'"\xed\xa0\x80"', b'"\xc3\x28"', b'"\xf4\x90\x80\x80"'],
)
def test_lone_surrogates_and_bad_utf8_are_rejected(text: bytes) -> None:
    body = encoded(payment()).replace(b'"m-1"', text)
    assert rejection(body).reason in (Reason.MALFORMED_JSON, Reason.NOT_UTF8)


@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["id", "source", "merchant_id", "note"]))
def test_megabyte_strings_are_handled(field: str) -> None:
    event = payment()
    big = "x" * (1024 * 1024)
    if field in ("id", "source"):
        event[field] = big
    else:
        event["data"][field] = big
    try:
        decoded = DECODER.decode(encoded(event))
    except EventRejected as error:
        assert len(error.message) <= 300
    else:
        assert decoded.extras == {"note": big}


def test_a_batch_decodes_into_groups_in_order_with_the_rejections() -> None:
    with_extras = payment(5, tip=1)
    with_extras["traceid"] = "t-1"
    bodies = [
        encoded(payment(1)),
        encoded(telemetry(2)),
        b"{not json",
        encoded(with_extras),
        encoded({**payment(6), "dataschema": "urn:contract:payment.transaction:9"}),
        encoded(payment(7, card_number="4111111111111112")),  # checked per column later
        encoded(interaction(8)),
        encoded(payment(9)),
    ]
    groups, rejected = DECODER.decode_batch(bodies)
    assert [(index, error.reason) for index, error in rejected] == [
        (2, Reason.MALFORMED_JSON),
        (4, Reason.UNKNOWN_VERSION),
    ]
    payments = groups[PAYMENT_TRANSACTION]
    assert payments.indexes == [0, 3, 5, 7]
    assert [e.data.transaction_id for e in payments.envelopes] == ["tx-1", "tx-5", "tx-7", "tx-9"]
    assert payments.extras == [None, {"tip": 1}, None, None]
    assert payments.extensions == [None, {"traceid": "t-1"}, None, None]
    assert [g.indexes for c, g in groups.items() if c is not PAYMENT_TRANSACTION] == [[1], [6]]
    assert all(g.extras is None for c, g in groups.items() if c is not PAYMENT_TRANSACTION)
    assert PAYMENT_TRANSACTION.violations([e.data for e in payments.envelopes]) == {
        2: "data.card_number is not a valid card number (Luhn)"
    }


@given(st.lists(st.sampled_from([b"[]", b"{}", b"\xff", encoded(payment(1))]), max_size=20))
def test_a_batch_decodes_each_body_as_decode_does(bodies: list[bytes]) -> None:
    groups, rejected = DECODER.decode_batch(bodies)
    valid = sorted(i for group in groups.values() for i in group.indexes)
    assert sorted(valid + [i for i, _ in rejected]) == list(range(len(bodies)))
    for index, error in rejected:
        assert error.reason == rejection(bodies[index]).reason
