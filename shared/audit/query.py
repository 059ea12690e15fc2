"""Searching the audit trail: records newest first, across hours, a page at a time (what
`GET /api/audit?actor=&action=&outcome=&since=&top=` answers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from embedded.audit.chain import RECORD, TIME_FORMAT
from shared.audit.events import AuditUnavailable
from shared.audit.fields import ACTION_LIMIT, ACTOR_ID_LIMIT, OUTCOMES
from shared.documents.port import (
    Condition,
    DocumentContainer,
    DocumentStoreError,
    InvalidDocument,
    Query,
)

MAX_TOP = 1000
MAX_CONTINUATION = 2048  # a query parameter: Cosmos DB's tokens are kept under 1 KB


def search(
    container: DocumentContainer,
    *,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    top: int = 100,
    continuation: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Records matching every filter given, newest first, at most `top` of them, and the
    continuation for the next page (None: no more). `actor` is the actor's id (an object id,
    a client id); `since` an aware datetime. ValueError names the argument that is wrong;
    AuditUnavailable when the store cannot answer."""
    where = [Condition("/type", "=", RECORD)]
    if actor is not None:
        where.append(Condition("/actor/id", "=", _text("actor", actor, ACTOR_ID_LIMIT)))
    if action is not None:
        where.append(Condition("/action", "=", _text("action", action, ACTION_LIMIT)))
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome is one of {', '.join(OUTCOMES)}, not {outcome!r}")
        where.append(Condition("/outcome", "=", outcome))
    if since is not None:
        where.append(Condition("/time", ">=", _since(since)))
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        raise ValueError(f"top is a whole number from 1 to {MAX_TOP}, not {top!r}")
    if continuation is not None and (
        not isinstance(continuation, str) or not 0 < len(continuation) <= MAX_CONTINUATION
    ):
        raise ValueError("continuation is the token a previous page gave")
    query = Query(where=where, order_by=[("/time", True)], cross_partition=True, page_size=top)
    try:
        page = container.query(query, continuation)
    except InvalidDocument as error:
        if continuation is not None:
            raise ValueError("continuation is not a token a previous page gave") from error
        raise AuditUnavailable(f"the audit store refused the search: {error}") from error
    except DocumentStoreError as error:
        raise AuditUnavailable(f"the audit store is unavailable: {error}") from error
    records = [{k: v for k, v in d.items() if not k.startswith("_")} for d in page.documents]
    return records, page.continuation


def _text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{name} is a non-empty string of at most {limit} characters")
    return value


def _since(value: object) -> str:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError("since is a datetime with a time zone (an ISO 8601 time with Z or +hh:mm)")
    return value.astimezone(UTC).strftime(TIME_FORMAT)
