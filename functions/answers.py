"""The JSON answer every HTTP function gives, in one place."""

import json
from typing import Any

import azure.functions as func


def json_response(body: object, status: int = 200) -> func.HttpResponse:
    """`body` as JSON with its status."""
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def json_object(req: func.HttpRequest, limit: int) -> dict[str, Any]:
    """The body as one JSON object of at most `limit` bytes; ValueError saying what is wrong."""
    raw = req.get_body()
    if len(raw) > limit:
        raise ValueError(f"the body is over {limit} bytes")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        raise ValueError("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body
