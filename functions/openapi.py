"""`GET /api/openapi.json`: the OpenAPI 3.1 description of the HTTP API
(no key; `Platform.Reader`).

Output: 200 with the description built from the code (`shared.openapi`): every route, its
parameters, bodies (the CloudEvents schemas come from the contracts), answers and the key scheme.
"""

import json

import azure.functions as func

from functions.access import requires
from shared.identity.roles import Role
from shared.openapi import openapi_document

bp = func.Blueprint()


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@requires(Role.READER)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(openapi_document()), mimetype="application/json")
