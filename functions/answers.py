"""The JSON answer every HTTP function gives, in one place."""

import json

import azure.functions as func


def json_response(body: object, status: int = 200) -> func.HttpResponse:
    """`body` as JSON with its status."""
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")
