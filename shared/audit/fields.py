"""What of an `AuditEvent` goes into a record: short single-line strings, with no card number,
bearer token or key in them, whatever the caller passed.

Each string is cut to its limit, then scrubbed: bearer and basic credentials, JWTs, and the
values of key-like query parameters (`code=`, `sig=`, `key=`, `token=`, `password=`,
`secret=`...) become `[token]` or `[redacted]`; card numbers are replaced by `[card]` with the
platform's one detector (`shared.privacy.card_numbers`), after the cut so that no cut can
leave a card number behind; control characters become spaces (no forged lines in a log).
A `traceparent` that is not W3C trace context is dropped, and a status outside 100-599 too.
"""

from __future__ import annotations

import re
from typing import Any

from shared.audit.events import AuditEvent
from shared.privacy.card_numbers import redact

ACTION_LIMIT = 64
RESOURCE_LIMIT = 256
REASON_LIMIT = 256
CLIENT_LIMIT = 64
ACTOR_KIND_LIMIT = 16
ACTOR_ID_LIMIT = 128
TENANT_LIMIT = 64
OUTCOMES = ("allowed", "success", "failure", "denied")
CARD = "[card]"  # no longer than a card number, so scrubbing never lengthens a string

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;\"']+")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?")
_SECRET_PARAMETER = re.compile(
    r"(?i)\b(code|sig|signature|key|api[-_]?key|token|access_token|id_token|"
    r"password|secret|client_secret)=[^&\s\"']+"
)


class InvalidAuditEvent(ValueError):
    """An event the trail cannot record as given (an outcome outside its vocabulary)."""


def record_fields(event: AuditEvent) -> dict[str, Any]:
    """The event's fields as a record holds them."""
    if event.outcome not in OUTCOMES:
        raise InvalidAuditEvent(
            f"an outcome is one of {', '.join(OUTCOMES)}, not {event.outcome!r}"
        )
    status = event.status
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        status = None
    traceparent = event.traceparent if _TRACEPARENT.fullmatch(event.traceparent or "") else ""
    return {
        "action": clean(event.action, ACTION_LIMIT),
        "outcome": event.outcome,
        "actor": {
            "kind": clean(event.actor.kind, ACTOR_KIND_LIMIT),
            "id": clean(event.actor.id, ACTOR_ID_LIMIT),
            "tenant": clean(event.actor.tenant, TENANT_LIMIT),
        },
        "resource": clean(event.resource, RESOURCE_LIMIT),
        "reason": clean(event.reason, REASON_LIMIT),
        "status": status,
        "client": clean(event.client, CLIENT_LIMIT),
        "traceparent": traceparent,
    }


def clean(value: object, limit: int) -> str:
    """A string for a record: at most `limit` characters, scrubbed, on one line."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if not text:
        return text
    text = text[: limit * 4]  # enough to see a secret whole, before the cut
    # Actions, actors, routes and addresses repeat from one request to the next: those that
    # scrubbing leaves as they are are remembered (never one that held a secret).
    key = (text, limit)
    if key in _UNCHANGED:
        return text
    scrubbed = _scrubbed(text, limit)
    if scrubbed == text:
        if len(_UNCHANGED) >= _UNCHANGED_LIMIT:
            _UNCHANGED.clear()
        _UNCHANGED.add(key)
    return scrubbed


_UNCHANGED: set[tuple[str, int]] = set()
_UNCHANGED_LIMIT = 4096


def _scrubbed(text: str, limit: int) -> str:
    if "=" in text or "eyJ" in text or " " in text:
        text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} [token]", text)
        text = _JWT.sub("[token]", text)
        text = _SECRET_PARAMETER.sub(lambda m: f"{m.group(1)}=[redacted]", text)
    text = redact(text[:limit], lambda digits: CARD)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else " " for c in text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON would carry it, UTF-8 cannot
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text
