"""The audit trail over HTTP, and its daily check.

- `GET /api/audit?actor=&action=&outcome=&since=&top=&continuation=` (`Platform.Admin`): records
  newest first, `{"records": [...], "continuation": token | null}`; 400 naming a bad parameter
  (`since` is ISO 8601 with a zone, `top` 1 to 1000); 503 when the trail cannot answer.
- A timer at 03:15 UTC walks every hour's chain and compares each closed hour with its
  checkpoint, logging the first record that was edited, removed, inserted or reordered (as
  `python -m devhost audit verify` does), and closes the hours not yet checkpointed.
"""

import logging

import azure.functions as func

from functions.access import requires
from functions.answers import json_response
from shared import query_params
from shared.audit.events import AuditUnavailable
from shared.audit.query import MAX_TOP, search
from shared.audit.verify import verify_partitions
from shared.bootstrap import current_platform
from shared.identity.roles import Role

log = logging.getLogger(__name__)
bp = func.Blueprint()
_FILTERS = ("actor", "action", "outcome")


@bp.route(route="audit", methods=["GET"])
@requires(Role.ADMIN)
def audit_records(req: func.HttpRequest) -> func.HttpResponse:
    params = req.params
    try:
        since = query_params.since(params.get("since"))
        top = query_params.top(params.get("top"), 100, MAX_TOP)
        records, continuation = search(
            current_platform().audit.container,
            **{name: params.get(name) for name in _FILTERS},
            since=since,
            top=top,
            continuation=params.get("continuation"),
        )
    except ValueError as error:
        return json_response({"error": str(error)}, 400)
    except AuditUnavailable as error:
        return json_response({"error": str(error)}, 503)
    return json_response({"records": records, "continuation": continuation})


@bp.timer_trigger(schedule="0 15 3 * * *", arg_name="timer")
def verify_audit_trail(timer: func.TimerRequest) -> None:
    trail = current_platform().audit
    trail.close_hours()
    results = verify_partitions(trail.container, trail.checkpoints)
    broken = [result.problem for result in results if result.problem is not None]
    for problem in broken:
        log.error("audit trail broken: %s", problem)
    log.info("audit trail: %d hours checked, %d broken", len(results), len(broken))
