"""Searching the audit trail: filters, newest first across hours, pages, and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from embedded.audit.checkpoints import checkpoints_path
from embedded.documents.store import Container, DocumentStore
from shared.audit.checkpoints import FileCheckpoints
from shared.audit.events import Actor, AuditUnavailable
from shared.audit.query import search
from shared.audit.trail import AUDIT_CONTAINER, DocumentAuditTrail
from shared.documents.port import DocumentStoreError, Page, Query
from tests.auditdata import HOUR, StepClock, event

pytestmark = pytest.mark.unit

ALICE = Actor("user", "alice-oid", "tenant-1")
ROBOT = Actor("app", "robot-client-id", "tenant-1")


@pytest.fixture
def container(tmp_path: Path) -> Container:
    store = DocumentStore(tmp_path / "documents" / "platform.sqlite3")
    audit = store.container(AUDIT_CONTAINER)
    trail = DocumentAuditTrail(
        audit,
        clock=StepClock(start=HOUR + 3000, step=60.0),  # 30 records over two hours
        checkpoints=FileCheckpoints(checkpoints_path(tmp_path)),
    )
    for n in range(30):
        denied = n % 3 == 0
        trail.append(
            event(
                actor=ALICE if n % 2 else ROBOT,
                action="authz_fail" if denied else "request",
                outcome="denied" if denied else "success",
                reason=f"call {n}",
            )
        )
    return audit


def reasons(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["reason"].split()[1]) for r in records]


def test_newest_first_across_hours_without_heads(container: Container) -> None:
    records, continuation = search(container)
    assert reasons(records) == list(range(29, -1, -1))
    assert continuation is None
    assert {r["partition"] for r in records} == {"2026-12-07T12", "2026-12-07T13"}
    assert all(r["type"] == "record" and not any(k.startswith("_") for k in r) for r in records)


def test_filters_combine(container: Container) -> None:
    records, _ = search(container, actor="alice-oid")
    assert reasons(records) == list(range(29, 0, -2))
    records, _ = search(container, action="authz_fail", outcome="denied")
    assert reasons(records) == list(range(27, -1, -3))
    records, _ = search(container, actor="robot-client-id", outcome="denied")
    assert reasons(records) == [24, 18, 12, 6, 0]
    [call_24] = [r for r in search(container)[0] if r["reason"] == "call 24"]
    since = datetime.fromisoformat(call_24["time"])
    records, _ = search(container, since=since)
    assert reasons(records) == [29, 28, 27, 26, 25, 24]
    elsewhere = since.astimezone(tz=UTC).astimezone(tz=None)  # the same instant, another zone
    assert reasons(search(container, since=elsewhere)[0]) == [29, 28, 27, 26, 25, 24]


def test_pages_follow_one_another_with_the_continuation(container: Container) -> None:
    seen: list[int] = []
    continuation = None
    pages = 0
    while True:
        records, continuation = search(container, top=7, continuation=continuation)
        seen.extend(reasons(records))
        pages += 1
        if continuation is None:
            break
    assert seen == list(range(29, -1, -1)) and pages == 5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"top": 0}, "top is a whole number from 1 to 1000"),
        ({"top": 1001}, "top is a whole number from 1 to 1000"),
        ({"top": True}, "top is a whole number"),
        ({"top": "5"}, "top is a whole number"),
        ({"since": datetime(2026, 12, 7)}, "since is a datetime with a time zone"),
        ({"since": "2026-12-07"}, "since is a datetime with a time zone"),
        ({"outcome": "maybe"}, "outcome is one of allowed, success, failure, denied"),
        ({"actor": ""}, "actor is a non-empty string"),
        ({"action": "x" * 65}, "action is a non-empty string of at most 64"),
        ({"continuation": ""}, "continuation is the token a previous page gave"),
        ({"continuation": "garbage!"}, "continuation is not a token a previous page gave"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    container: Container, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        search(container, **arguments)


def test_a_store_that_fails_makes_the_search_unavailable(container: Container) -> None:
    class Down:
        def query(self, query: Query, continuation: str | None = None) -> Page:
            raise DocumentStoreError("Cosmos DB answered 503")

    with pytest.raises(AuditUnavailable, match="503"):
        search(Down(), since=datetime.now(UTC) - timedelta(hours=1))  # type: ignore[arg-type]
