"""Alerts over HTTP.

`GET /api/alerts?type=&entity=&since=&top=&continuation=` (`Platform.Analyst`): the alerts the
models raised, newest first, `{"alerts": [...], "continuation": token | null}`. `type` is a
model that raises alerts (`fraud`, `maintenance`), `entity` an account or device id (at most
128 characters), `since` an RFC 3339 time with its zone, `top` 1 to 500 (50 by default); 400
naming a parameter that is not so.
"""

import azure.functions as func

from functions.access import requires
from functions.answers import json_response
from shared import query_params
from shared.bootstrap import current_platform
from shared.documents.port import DocumentStoreError
from shared.identity.roles import Role
from shared.models.alerts import ALERTING, MAX_ENTITY, MAX_TOP

bp = func.Blueprint()
MAX_CONTINUATION = 2048


@bp.route(route="alerts", methods=["GET"])
@requires(Role.ANALYST)
def list_alerts(req: func.HttpRequest) -> func.HttpResponse:
    params = req.params
    kind, entity, continuation = (
        params.get("type"),
        params.get("entity"),
        params.get("continuation"),
    )
    try:
        if kind is not None and kind not in ALERTING:
            raise ValueError(f"type is one of {', '.join(ALERTING)}")
        if entity is not None and not 0 < len(entity) <= MAX_ENTITY:
            raise ValueError(f"entity is 1 to {MAX_ENTITY} characters")
        if continuation is not None and not 0 < len(continuation) <= MAX_CONTINUATION:
            raise ValueError("continuation is the token a previous page gave")
        since = query_params.since(params.get("since"))
        top = query_params.top(params.get("top"), 50, MAX_TOP)
        alerts, following = current_platform().alerts.search(
            type=kind, entity=entity, since=since, top=top, continuation=continuation
        )
    except ValueError as error:
        return json_response({"error": str(error)}, 400)
    except DocumentStoreError as error:
        return json_response({"error": f"the alerts cannot be read: {type(error).__name__}"}, 503)
    return json_response({"alerts": alerts, "continuation": following})
