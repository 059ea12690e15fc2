"""Personal data in answers: masked for callers without PII.Read, whatever else they hold."""

from __future__ import annotations

import pytest

from shared.events.contracts import IOT_TELEMETRY, PAYMENT_TRANSACTION
from shared.identity.masking import MASK, masked, personal_fields
from shared.identity.principal import Principal

pytestmark = pytest.mark.unit

PAYMENTS = PAYMENT_TRANSACTION
ROW = {"transaction_id": "t1", "card_number": "ab" * 32, "card_last4": "1111", "amount": 5.0}


def caller(*roles: str) -> Principal:
    return Principal("user", "oid", "tenant", frozenset(roles))


def test_the_fields_of_people_come_from_the_contract() -> None:
    assert personal_fields(PAYMENTS) == {"card_number", "card_last4"}
    assert personal_fields(IOT_TELEMETRY) == frozenset()


@pytest.mark.parametrize("roles", [("Platform.Reader",), ("Platform.Admin",), ()])
def test_a_caller_without_pii_read_sees_them_masked(roles: tuple[str, ...]) -> None:
    shown = masked({**ROW, "card_last4": None}, personal_fields(PAYMENTS), caller(*roles))
    assert shown == {**ROW, "card_number": MASK, "card_last4": None}


def test_a_caller_with_pii_read_sees_them_and_the_row_is_never_changed_in_place() -> None:
    row = dict(ROW)
    assert masked(row, personal_fields(PAYMENTS), caller("Platform.Reader", "PII.Read")) == ROW
    masked(row, personal_fields(PAYMENTS), caller("Platform.Reader"))
    assert row == ROW
