"""Two no-op HTTP functions for `python -m benchmarks auth`: one open, one guarded by the
platform's route guard (authentication, authorization and an audit record per request)."""

import azure.functions as func

from functions.access import requires
from shared.identity.roles import Role

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="open", methods=["GET"])
def noop_open(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="guarded", methods=["GET"])
@requires(Role.READER)
def noop_guarded(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")
