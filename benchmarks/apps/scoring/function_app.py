"""The platform's serving path for `python -m benchmarks scoring`, and the baseline beside it.

The platform's own blueprints (events in, ingestion with scoring and alerts, scores,
recommendations, alerts, health), composed as `function_app.py` composes them, plus two
functions that do nothing: `noop`, open, for the devhost's own cost per request, and
`noop_guarded`, behind the same permission check and audit record as `/api/score`.
"""

import azure.functions as func

from functions import alerts, events, health, ingest, serving
from functions.access import PlatformApp, public, requires
from shared.bootstrap import current_platform
from shared.identity.roles import Role

current_platform()  # fail at start-up, naming the setting, if the settings are wrong

app = PlatformApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health.bp)
app.register_functions(events.bp)
app.register_functions(ingest.bp)
app.register_functions(alerts.bp)
app.register_functions(serving.bp)


@app.route(route="noop", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@public  # a benchmark's baseline: it reads nothing and does nothing
def noop(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="noop/guarded", methods=["GET", "POST"])
@requires(Role.ANALYST)
def noop_guarded(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")
