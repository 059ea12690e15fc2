"""`POST /api/events`: CloudEvents 1.0 JSON in; the valid events durably published to the hub.

Body: one event as `application/cloudevents+json`, or an array as
`application/cloudevents-batch+json` (`application/json` takes either), or one event in binary
mode (`ce-*` headers, the data as an `application/json` body); at most 1 MB after any gzip or
deflate `Content-Encoding`, and 5,000 events.
Answers 202 `{"accepted": n, "rejected": [{"index", "id", "reason", "error"}]}` once the
accepted events are durable in the hub (valid events of a batch are accepted even when
others are rejected; past 100 rejections, the rest are counted in `rejected_total` and
`rejected_by_reason`); 400 `{"error"}` for a body that is not UTF-8 JSON events, or with the
rejection for a single invalid event; 413 over 1 MB or 5,000 events; 415 for another content
type or coding; 503 when the hub cannot take the events (then none was accepted).
"""

import azure.functions as func

from functions.access import requires
from functions.answers import json_response
from shared.bootstrap import current_platform
from shared.events.errors import (
    MalformedRequest,
    PublishFailed,
    RequestRejected,
    RequestTooLarge,
    UnsupportedContent,
)
from shared.events.intake import IntakeResult
from shared.identity.roles import Role

bp = func.Blueprint()
_REJECTION_STATUS: dict[type[RequestRejected], int] = {
    MalformedRequest: 400,
    RequestTooLarge: 413,
    UnsupportedContent: 415,
}


@bp.route(route="events", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@requires(Role.WRITER)
async def post_events(req: func.HttpRequest) -> func.HttpResponse:
    intake = current_platform().events.intake
    try:
        result = await intake.submit(req.get_body(), req.headers.get("content-type"), req.headers)
    except RequestRejected as error:
        return json_response({"error": error.message}, rejection_status(error))
    except PublishFailed as error:
        return json_response({"error": f"no event was accepted: {error}"}, 503)
    return json_response(result.to_json(), result_status(result))


def rejection_status(error: RequestRejected) -> int:
    """The HTTP status of an unusable request."""
    return _REJECTION_STATUS[type(error)]


def result_status(result: IntakeResult) -> int:
    """400 for a single event rejected, else 202 (a batch's rejections are in the body)."""
    return 400 if result.refused else 202
