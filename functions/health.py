"""`GET /api/health`: the version, the uptime, and each backend's adapter and readiness.

Anonymous: the one route open to anyone. Answers 200 with `{"status": "healthy", "version",
"uptime_s", "backends": {name: {"adapter", "ready", "detail", "latency_ms"}}}`, or 503 with the
same body when a backend is not ready. The backends' results are at most 2 s old
(`shared.health.RecentHealth`): requests within that time reuse the last probes, so that
polling the route is cheap; a backend that goes down or comes back shows within 2 s.
"""

import json

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from functions.access import public
from shared.bootstrap import current_platform

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@public
async def health(req: Request) -> Response:
    # Written for the FastAPI types: the probe reads nothing of the request, so it skips the
    # classic request's construction and stays cheap while the host is busy.
    services = current_platform()
    report = await services.health.report(
        services.probes, version=services.version, started_at=services.started_at
    )
    return Response(
        json.dumps(report.to_json()),
        status_code=200 if report.healthy else 503,
        media_type="application/json",
    )
