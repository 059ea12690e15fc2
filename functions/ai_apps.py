"""The AI gateway's admin routes: apps, their keys and limits, and the usage ledger.

Behind the host's admin (master) key, as the Functions host guards its own admin API, and for
`Platform.Admin` callers (the platform's guard audits who did it; a key is not an identity):

- `POST /api/ai/apps` `{"name", "limits": {...}}` issues an app and its gateway key, shown in
  this answer only (201; only a salted hash is kept); with `"entra_app_id"` it registers an
  Entra ID application instead, which calls with tokens and gets no key.
- `GET /api/ai/apps` lists the apps; `GET /api/ai/apps/{app_id}` shows one with what it has
  left; `PATCH /api/ai/apps/{app_id}` `{"limits": {...}}` changes some of its limits;
  `DELETE /api/ai/apps/{app_id}` revokes it (its key is dead at once, everywhere).
- `GET /api/ai/usage?app=&since=&until=` sums the ledger: requests, tokens, cost, by outcome.

`limits` are `tokens_per_minute`, `requests_per_minute`, `token_quota`, `quota_period`
(`day` or `month`) and `max_tokens_cap`. A malformed body is a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from functions.access import requires
from functions.answers import json_object, json_response
from shared import query_params
from shared.ai.app_limits import AppLimits, InvalidLimits
from shared.ai.apps import AppExists, AppNotFound, InvalidApp
from shared.ai.ledger import InvalidUsage
from shared.bootstrap import current_platform
from shared.identity.roles import Role

bp = func.Blueprint()
MAX_BODY = 64 * 1024
_APP_FIELDS = frozenset({"name", "limits", "entra_app_id"})


@bp.route(route="ai/apps", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
@requires(Role.ADMIN, action="ai_app_created")
def create_ai_app(req: func.HttpRequest) -> func.HttpResponse:
    try:
        body = json_object(req, MAX_BODY)
        unknown = sorted(set(body) - _APP_FIELDS)
        if unknown:
            raise InvalidApp(
                f"unknown field {unknown[0][:40]!r}; the fields are name, limits, entra_app_id"
            )
        limits = AppLimits.from_json(body.get("limits"))
        apps = current_platform().ai_stores.apps
        name = body.get("name")
        if not isinstance(name, str):
            raise InvalidApp("an app's name is a non-empty string")
        entra = body.get("entra_app_id")
        if entra is not None:
            app = apps.register_entra(name, entra, limits)
            return json_response({"app": app.to_json()}, 201)
        app, key = apps.issue(name, limits)
    except ValueError as error:  # InvalidApp, InvalidLimits, a body that is not JSON
        return json_response({"error": str(error)}, 400)
    except AppExists as error:
        return json_response({"error": str(error)}, 409)
    return json_response({"app": app.to_json(), "key": key}, 201)


@bp.route(route="ai/apps", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@requires(Role.ADMIN)
def list_ai_apps(req: func.HttpRequest) -> func.HttpResponse:
    apps = current_platform().ai_stores.apps.list()
    return json_response({"apps": [app.to_json() for app in apps]})


@bp.route(route="ai/apps/{app_id}", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@requires(Role.ADMIN)
def get_ai_app(req: func.HttpRequest) -> func.HttpResponse:
    platform = current_platform()
    try:
        app = platform.ai_stores.apps.get(req.route_params["app_id"])
    except AppNotFound as error:
        return json_response({"error": str(error)}, 404)
    remaining = platform.ai_stores.limiter.remaining(app) if not app.revoked else None
    left = (
        None
        if remaining is None
        else {
            "tokens": remaining.tokens,
            "requests": remaining.requests,
            "quota": remaining.quota,
        }
    )
    return json_response({"app": app.to_json(), "remaining": left})


@bp.route(route="ai/apps/{app_id}", methods=["PATCH"], auth_level=func.AuthLevel.ADMIN)
@requires(Role.ADMIN, action="ai_app_limits_changed")
def update_ai_app(req: func.HttpRequest) -> func.HttpResponse:
    apps = current_platform().ai_stores.apps
    try:
        body = json_object(req, MAX_BODY)
        if set(body) != {"limits"}:
            raise InvalidLimits('send {"limits": {...}} with the limits to change')
        app = apps.get(req.route_params["app_id"])
        app = apps.update_limits(app.id, app.limits.updated(body["limits"]))
    except ValueError as error:  # InvalidApp, InvalidLimits, a body that is not JSON
        return json_response({"error": str(error)}, 400)
    except AppNotFound as error:
        return json_response({"error": str(error)}, 404)
    return json_response({"app": app.to_json()})


@bp.route(route="ai/apps/{app_id}", methods=["DELETE"], auth_level=func.AuthLevel.ADMIN)
@requires(Role.ADMIN, action="ai_app_revoked")
def revoke_ai_app(req: func.HttpRequest) -> func.HttpResponse:
    try:
        app = current_platform().ai_stores.apps.revoke(req.route_params["app_id"])
    except AppNotFound as error:
        return json_response({"error": str(error)}, 404)
    return json_response({"app": app.to_json()})


@bp.route(route="ai/usage", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
@requires(Role.ADMIN)
def ai_usage(req: func.HttpRequest) -> func.HttpResponse:
    try:
        since = query_params.since(req.params.get("since"))
        until = query_params.since(req.params.get("until"), name="until")
        app = req.params.get("app")
        totals = current_platform().ai_stores.ledger.summary(app, since, until)
    except (ValueError, InvalidUsage) as error:
        return json_response({"error": str(error)}, 400)
    answer: dict[str, Any] = {"app": app, "since": _stamp(since), "until": _stamp(until)}
    return json_response({**answer, **totals.to_json()})


def _stamp(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()
