"""Scores and recommendations over HTTP, from the champions and the online features.

- `POST /api/score/{model}` (`Platform.Analyst`), `model` one of `fraud` and `maintenance`:
  one record or an array of up to 100, each a CloudEvent as posted to `/api/events` or its bare
  data; `{"results": [{"score", "decision", "threshold", "reasons", "model", "version"}]}` in
  order. 400 names the record and field at fault; 404 for another model; 503 before the model
  has a champion. The records are not stored, and the entity's features are not moved.
- `GET /api/recommend/{user_id}?k=10` (`Platform.Analyst`): `{"user_id", "items", "source",
  "version"}`, `k` 1 to 100; 400 for a bad `k` or a user id over 128 characters.
"""

import datetime as dt

import azure.functions as func

from functions.access import requires
from functions.answers import json_response
from shared import query_params
from shared.bootstrap import current_platform
from shared.documents.port import DocumentStoreError
from shared.identity.roles import Role
from shared.models.serving import MAX_K, SCORED, BadScoreRequest, NoChampion

bp = func.Blueprint()
MAX_USER_ID = 128


@bp.route(route="score/{model}", methods=["POST"])
@requires(Role.ANALYST)
def score(req: func.HttpRequest) -> func.HttpResponse:
    model = req.route_params["model"]
    if model not in SCORED:
        known = ", ".join(sorted(SCORED))
        return json_response(
            {"error": f"no scoring model {model[:64]!r}: the models are {known}"}, 404
        )
    try:
        results = current_platform().serving.score(model, req.get_body(), dt.datetime.now(dt.UTC))
    except BadScoreRequest as error:
        return json_response({"error": str(error)}, 400)
    except NoChampion as error:
        return json_response({"error": str(error)}, 503)
    except DocumentStoreError as error:  # the feature store cannot be read
        return json_response(
            {"error": f"the online features are unavailable ({type(error).__name__})"}, 503
        )
    return json_response({"results": results})


@bp.route(route="recommend/{user_id}", methods=["GET"])
@requires(Role.ANALYST)
def recommend(req: func.HttpRequest) -> func.HttpResponse:
    user_id = req.route_params["user_id"]
    try:
        if not 0 < len(user_id) <= MAX_USER_ID:
            raise ValueError(f"a user id is 1 to {MAX_USER_ID} characters")
        k = query_params.top(req.params.get("k"), 10, MAX_K, name="k")
        answer = current_platform().serving.recommend(user_id, k)
    except ValueError as error:
        return json_response({"error": str(error)}, 400)
    except NoChampion as error:
        return json_response({"error": str(error)}, 503)
    except DocumentStoreError as error:
        return json_response(
            {"error": f"the online features are unavailable ({type(error).__name__})"}, 503
        )
    return json_response(answer)
