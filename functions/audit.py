"""The audit trail over HTTP, and its daily check.

- `GET /api/audit?actor=&action=&outcome=&since=&top=&continuation=` (`Platform.Admin`): records
  newest first, `{"records": [...], "continuation": token | null}`; 400 naming a bad parameter
  (`since` is ISO 8601 with a zone, `top` 1 to 1000); 503 when the trail cannot answer.
- A timer at 03:15 UTC walks every hour's chain and compares each closed hour with its
  checkpoint, logging the first record that was edited, removed, inserted or reordered (as
  `python -m devhost audit verify` does), and closes the hours not yet checkpointed.
"""

import json
import logging
import re
from datetime import datetime

import azure.functions as func

from functions.access import requires
from shared.audit.events import AuditUnavailable
from shared.audit.query import search
from shared.audit.verify import verify_partitions
from shared.bootstrap import current_platform
from shared.identity.roles import Role

log = logging.getLogger(__name__)
bp = func.Blueprint()
_FILTERS = ("actor", "action", "outcome")
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,20}))?([Zz]|[+-]\d{2}:\d{2})"
)


def _json(body: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@bp.route(route="audit", methods=["GET"])
@requires(Role.ADMIN)
def audit_records(req: func.HttpRequest) -> func.HttpResponse:
    params = req.params
    try:
        since = _since(params.get("since"))
        top = _top(params.get("top"))
        records, continuation = search(
            current_platform().audit.container,
            **{name: params.get(name) for name in _FILTERS},
            since=since,
            top=top,
            continuation=params.get("continuation"),
        )
    except ValueError as error:
        return _json({"error": str(error)}, 400)
    except AuditUnavailable as error:
        return _json({"error": str(error)}, 503)
    return _json({"records": records, "continuation": continuation})


@bp.timer_trigger(schedule="0 15 3 * * *", arg_name="timer")
def verify_audit_trail(timer: func.TimerRequest) -> None:
    trail = current_platform().audit
    trail.close_hours()
    results = verify_partitions(trail.container, trail.checkpoints)
    broken = [result.problem for result in results if result.problem is not None]
    for problem in broken:
        log.error("audit trail broken: %s", problem)
    log.info("audit trail: %d hours checked, %d broken", len(results), len(broken))


def _since(text: str | None) -> datetime | None:
    """An RFC 3339 date-time, as the description says (Python would take more forms)."""
    if text is None:
        return None
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ValueError(f"since is an RFC 3339 time with a zone, not {text[:40]!r}")
    day, clock, fraction, zone = found.groups()
    micro = f".{(fraction or '')[:6]:0<6}"
    try:
        return datetime.fromisoformat(f"{day}T{clock}{micro}{zone.upper()}")
    except ValueError as error:
        raise ValueError(f"since is not a real time: {text[:40]!r}") from error


def _top(text: str | None) -> int:
    if text is None:
        return 100
    if not text.isascii() or not text.isdigit() or len(text) > 7:
        raise ValueError(f"top is a whole number from 1 to 1000, not {text[:20]!r}")
    return int(text)
