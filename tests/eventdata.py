"""CloudEvents for tests: valid events of each contract, card numbers, and hub messages."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.events.envelope import EventDecoder
from shared.events.intake import EventIntake
from shared.events.protection import EventProtector
from shared.events.pseudonymize import Pseudonymizer
from shared.events.publisher import EventPublisher

UTC = dt.UTC
_ids = itertools.count(1)


def with_luhn_digit(prefix: str) -> str:
    """`prefix` plus the check digit that makes it pass Luhn."""
    for digit in "0123456789":
        candidate = prefix + digit
        total = 0
        for position, char in enumerate(reversed(candidate)):
            value = int(char)
            if position % 2:
                value = value * 2 - 9 if value > 4 else value * 2
            total += value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def card(n: int) -> str:
    """A distinct, Luhn-valid 16-digit card number for each n."""
    return with_luhn_digit(f"4{n:014d}")


def envelope(event_type: str, data: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": f"evt-{next(_ids)}",
        "source": "/tests",
        "type": event_type,
        "time": "2024-05-01T12:00:00Z",
        "data": data,
    }
    event.update(attributes)
    return event


def payment(n: int = 1, **data: Any) -> dict[str, Any]:
    fields = {
        "transaction_id": f"tx-{n}",
        "account_id": f"acct-{n % 7}",
        "card_number": card(n),
        "amount": 10.0 + n,
        "currency": "EUR",
        "merchant_id": "m-1",
        "merchant_category": "5411",
        "country": "FR",
        "channel": "pos",
    }
    fields.update(data)
    return envelope("payment.transaction", fields)


def telemetry(n: int = 1, **data: Any) -> dict[str, Any]:
    fields = {
        "device_id": f"dev-{n % 3}",
        "temperature_c": 20.5,
        "vibration_mm_s": 1.5,
        "pressure_kpa": 101.3,
        "rpm": 1500.0,
    }
    fields.update(data)
    return envelope("iot.telemetry", fields)


def interaction(n: int = 1, **data: Any) -> dict[str, Any]:
    fields = {"user_id": f"u-{n % 5}", "item_id": f"i-{n}", "action": "view", "session_id": "s-1"}
    fields.update(data)
    return envelope("app.interaction", fields)


def encoded(event: Any) -> bytes:
    return json.dumps(event).encode()


@dataclass
class HubMessage:
    """An event as the trigger hands it over (the shape of `func.EventHubEvent`)."""

    body: bytes
    sequence_number: int
    enqueued_time: dt.datetime = field(
        default_factory=lambda: dt.datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    )
    offset: int = 0
    partition_key: str | None = None

    def get_body(self) -> bytes:
        return self.body


def messages(bodies: Iterable[bytes], first_sequence: int = 0) -> list[HubMessage]:
    return [
        HubMessage(body, first_sequence + i, offset=(first_sequence + i) * 100)
        for i, body in enumerate(bodies)
    ]


TEST_PSEUDONYMIZER = Pseudonymizer(b"k" * 32)


def event_intake(publisher: EventPublisher, decoder: EventDecoder | None = None) -> EventIntake:
    """The intake over `publisher`, protecting events under the tests' pseudonym key."""
    decoder = decoder or EventDecoder()
    return EventIntake(decoder, publisher, EventProtector(decoder, TEST_PSEUDONYMIZER))


def protected_data(event: dict[str, Any]) -> dict[str, Any]:
    """The data of `event` as intake protects it: each PII field as its pseudonym, followed
    by the part the contract keeps."""
    data = dict(event["data"])
    if "card_number" in data:
        number = data["card_number"]
        data["card_number"] = TEST_PSEUDONYMIZER.pseudonym(number)
        data["card_last4"] = number[-4:]
    return data
