"""`GET /api/openapi.json`: the OpenAPI 3.1 description of the HTTP API (anonymous).

Output: 200 with the description built from the code (`shared.openapi`): every route, its
parameters, bodies (the CloudEvents schemas come from the contracts), answers and the key scheme.
"""

import json

import azure.functions as func

from shared.openapi import openapi_document

bp = func.Blueprint()


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(openapi_document()), mimetype="application/json")
