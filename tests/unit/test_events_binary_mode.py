"""CloudEvents binary content mode at the intake: the CloudEvents SDK as the client, the same
validation and answers as structured mode, and hostile headers."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import quote

import pytest
from cloudevents.core.bindings.http import HTTPMessage, to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given
from hypothesis import strategies as st

from functions.events import rejection_status, result_status
from shared.events.binary_mode import header_value
from shared.events.errors import RequestRejected
from shared.events.intake import IntakeResult
from tests.eventdata import event_intake, payment, protected_data
from tests.fakes.publisher import FakePublisher

pytestmark = pytest.mark.unit

SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in ' "%')


def sdk_event(event: dict[str, Any], **attributes: Any) -> CloudEvent:
    fields = {k: v for k, v in event.items() if k not in ("data", "specversion", "time")}
    fields["time"] = dt.datetime.fromisoformat(event["time"])
    return CloudEvent(
        attributes={**fields, "datacontenttype": "application/json", **attributes},
        data=event["data"],
    )


async def post(message: HTTPMessage, publisher: FakePublisher | None = None) -> IntakeResult:
    intake = event_intake(publisher or FakePublisher())
    return await intake.submit(message.body, message.headers.get("content-type"), message.headers)


def binary(headers: dict[str, str], body: bytes = b"{}") -> HTTPMessage:
    return HTTPMessage(headers={"content-type": "application/json", **headers}, body=body)


async def test_the_sdk_in_binary_mode_publishes_the_structured_event() -> None:
    event = payment(3)
    publisher = FakePublisher()
    message = to_binary_event(sdk_event(event, subject="café 1", traceid="t-1"))
    assert "ce-id" in message.headers and message.headers["ce-subject"] == "caf%C3%A9%201"
    assert (await post(message, publisher)).to_json() == {"accepted": 1, "rejected": []}
    published = publisher.published[0][1][0]
    assert published.partition_key == "café 1"
    sent = json.loads(published.body)
    assert sent["data"] == protected_data(event)
    assert {k: sent[k] for k in ("specversion", "id", "source", "type", "subject", "traceid")} == {
        "specversion": "1.0",
        "id": event["id"],
        "source": "/tests",
        "type": "payment.transaction",
        "subject": "café 1",
        "traceid": "t-1",
    }
    assert sent["datacontenttype"] == "application/json"


async def test_the_sdk_in_structured_mode_is_accepted() -> None:
    message = to_structured_event(sdk_event(payment(4)))
    assert message.headers["content-type"] == "application/cloudevents+json"
    assert (await post(message)).accepted == 1


@pytest.mark.parametrize(
    "broken",
    [
        {"card_number": "4111111111111112"},  # fails Luhn
        {"currency": "ZZZ"},
    ],
)
async def test_an_invalid_event_gets_the_same_answer_in_both_modes(broken: dict[str, Any]) -> None:
    event = sdk_event(payment(5, **broken))
    in_binary = await post(to_binary_event(event))
    in_structured = await post(to_structured_event(event))
    assert result_status(in_binary) == result_status(in_structured) == 400
    assert in_binary.to_json() == in_structured.to_json()


REQUIRED = {
    "ce-specversion": "1.0",
    "ce-id": "e-1",
    "ce-source": "/s",
    "ce-type": "payment.transaction",
}
DATA = json.dumps(payment(6)["data"]).encode()


@pytest.mark.parametrize(
    ("missing", "reason"),
    [("ce-id", "invalid_envelope"), ("ce-source", "invalid_envelope"), ("ce-type", None)],
)
async def test_a_missing_attribute_is_rejected_like_in_structured_mode(
    missing: str, reason: str | None
) -> None:
    headers = {k: v for k, v in REQUIRED.items() if k != missing}
    result = await post(binary(headers, DATA))
    assert result_status(result) == 400
    structured = {k[3:]: v for k, v in headers.items()}
    same = await post(
        HTTPMessage(
            {"content-type": "application/cloudevents+json"},
            json.dumps(
                {**structured, "datacontenttype": "application/json", "data": payment(6)["data"]}
            ).encode(),
        )
    )
    assert result.to_json() == same.to_json()


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        ({**REQUIRED, "ce-specversion": "0.3"}, DATA, 400, 'specversion must be "1.0"'),
        # Sent twice: HTTP hosts join the values with ", ".
        ({**REQUIRED, "ce-specversion": "1.0, 1.0"}, DATA, 400, "sent more than once"),
        ({**REQUIRED, "ce-id": "e-1, e-2"}, DATA, 400, "sent more than once"),
        ({**REQUIRED, "ce-id": "é"}, DATA, 400, "printable ASCII"),
        ({**REQUIRED, "ce-id": "a\x00b"}, DATA, 400, "printable ASCII"),
        ({**REQUIRED, "ce-id": '"e-1"'}, DATA, 400, "quotes"),
        ({**REQUIRED, "ce-id": "100%"}, DATA, 400, "percent-encoded"),
        ({**REQUIRED, "ce-id": "%zz"}, DATA, 400, "percent-encoded"),
        ({**REQUIRED, "ce-id": "%FF%FE"}, DATA, 400, "percent-encoded UTF-8"),
        ({**REQUIRED, "ce-id": "x" * 5000}, DATA, 400, "length <= 256"),
        ({**REQUIRED, "ce-datacontenttype": "application/json"}, DATA, 400, "Content-Type"),
        ({**REQUIRED, "ce-data": "{}"}, DATA, 400, "not a binary-mode header"),
        ({**REQUIRED, "ce-Extension_Name": "x"}, DATA, 400, "extension attribute names"),
        (REQUIRED, b"not json", 400, "not valid JSON"),
        (REQUIRED, b'{"a": 1}, "id": "other"', 400, "not valid JSON"),
        (REQUIRED, b"\xff", 400, "not valid UTF-8"),
        (REQUIRED, b"", 400, "data must be a JSON object"),
        (REQUIRED, b"[1, 2]", 400, "data must be a JSON object"),
        ({**REQUIRED, "content-type": "text/plain"}, b"hello", 415, "application/json"),
        ({**REQUIRED, "content-type": ""}, DATA, 415, "application/json"),
        ({**REQUIRED, "content-type": "application/json; charset=latin-1"}, DATA, 415, "UTF-8"),
    ],
)
async def test_hostile_binary_mode_requests(
    headers: dict[str, str], body: bytes, status: int, message: str
) -> None:
    try:
        result = await post(binary(headers, body))
    except RequestRejected as error:
        answer = (rejection_status(error), error.message)
    else:
        answer = (result_status(result), result.to_json()["error"])
    assert answer[0] == status
    assert message in answer[1]


async def test_header_names_are_case_insensitive() -> None:
    headers = {k.upper(): v for k, v in REQUIRED.items()}
    assert (await post(binary(headers, DATA))).accepted == 1


async def test_plain_json_without_ce_headers_is_structured() -> None:
    event = json.dumps(payment(7)).encode()
    assert (await post(HTTPMessage({"content-type": "application/json"}, event))).accepted == 1
    with pytest.raises(RequestRejected, match="not valid JSON|data"):
        await post(HTTPMessage({"content-type": "application/json"}, b"{"))


@given(st.text(max_size=200))
def test_header_values_decode_what_the_binding_encodes(text: str) -> None:
    assert header_value("ce-x", quote(text, safe=SAFE)) == text


@given(st.text(max_size=100))
def test_any_header_value_decodes_or_is_refused_with_400(text: str) -> None:
    try:
        header_value("ce-x", text)
    except RequestRejected as error:
        assert rejection_status(error) == 400
