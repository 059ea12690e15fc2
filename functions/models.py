"""The models over HTTP.

- `POST /api/models/{name}/train` (`Platform.Operator`, privileged: `model_training_started`):
  body empty or `{"label_maturity_hours": h}`; 202 with the Durable check-status body; 409
  with the id of the training in progress; 404 for a model that is not trained here; 400 for
  a body that cannot be used.
- `POST /api/models/{name}/batch-scores` (`Platform.Operator`, privileged:
  `model_batch_scoring_started`): batch inference into `gold/<name>_scores`; body empty or
  `{"version": n, "source": "<silver|gold>.<table>"}` (the champion; the model's silver
  table); 202 with the Durable check-status body; 409 with the id of a scoring in progress;
  404 for a model that is not scored in batch; 400 for a body that cannot be used.
- `GET /api/models` (`Platform.Reader`): the registered models, with aliases and their latest
  version.
- `GET /api/models/{name}` (`Platform.Reader`): the model, its lifecycle (stage, traffic split
  by version, the orchestration driving it, the latest decisions) and its versions, newest
  first (metrics, parameters, signature, input example, training data versions, validation).
- `GET /api/models/{name}/versions/{version}/onnx` (`Platform.Reader`): the ONNX file, for
  edge devices; 404 for a version or file that does not exist.
"""

import datetime as dt

import azure.durable_functions as df
import azure.functions as func

from functions.access import requires
from functions.answers import json_response
from orchestrations.model_scoring import active_scoring, start_scoring
from orchestrations.models import active_training, start_training
from shared.bootstrap import current_platform
from shared.documents.port import DocumentStoreError
from shared.identity.roles import Role
from shared.models.artifacts import ArtifactNotFound
from shared.models.batch_scoring import SCORABLE
from shared.models.registry import ModelNotFound, ModelVersionNotFound, RegistryUnavailable
from shared.models.rollout import LIFECYCLE_CONTAINER, decisions, lifecycle_summary
from shared.models.service import (
    BadModelRequest,
    known_model,
    model_summary,
    parse_batch_scoring,
    parse_training,
    parse_version,
    version_summary,
)
from shared.models.training import TRAINERS

bp = df.Blueprint()


def _unavailable(error: Exception) -> func.HttpResponse:
    return json_response(
        {"error": f"the model registry is unavailable ({type(error).__name__})"}, 503
    )


def _no_model(name: str) -> func.HttpResponse:
    known = ", ".join(TRAINERS)
    return json_response({"error": f"no model {name[:64]!r}; the models are: {known}"}, 404)


@bp.route(route="models/{name}/train", methods=["POST"])
@bp.durable_client_input(client_name="client")
@requires(Role.OPERATOR, action="model_training_started")
async def train_model(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    name = req.route_params["name"]
    if not known_model(name):
        return _no_model(name)
    try:
        options = parse_training(req.get_body())
    except BadModelRequest as error:
        return json_response({"error": str(error)}, 400)
    running = await active_training(client, name)
    if running is not None:
        return json_response({"error": "a training is in progress", "instanceId": running}, 409)
    moment = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    instance_id = await start_training(client, name, moment, trigger="http", **options)
    return client.create_check_status_response(req, instance_id)


@bp.route(route="models/{name}/batch-scores", methods=["POST"])
@bp.durable_client_input(client_name="client")
@requires(Role.OPERATOR, action="model_batch_scoring_started")
async def batch_score_model(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    name = req.route_params["name"]
    if name not in SCORABLE:
        scored = ", ".join(SCORABLE)
        return json_response(
            {"error": f"{name[:64]!r} is not scored in batch; these are: {scored}"}, 404
        )
    try:
        options = parse_batch_scoring(req.get_body())
    except BadModelRequest as error:
        return json_response({"error": str(error)}, 400)
    running = await active_scoring(client, name)
    if running is not None:
        return json_response(
            {"error": "a batch scoring is in progress", "instanceId": running}, 409
        )
    moment = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    instance_id = await start_scoring(client, name, moment, **options)
    return client.create_check_status_response(req, instance_id)


@bp.route(route="models", methods=["GET"])
@requires(Role.READER)
def list_models(req: func.HttpRequest) -> func.HttpResponse:
    try:
        models = current_platform().models.registry.list_models()
    except (DocumentStoreError, RegistryUnavailable) as error:
        return _unavailable(error)
    return json_response({"models": [model_summary(model) for model in models]})


@bp.route(route="models/{name}", methods=["GET"])
@requires(Role.READER)
def get_model(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params["name"]
    if not known_model(name):
        return _no_model(name)
    registry = current_platform().models.registry
    try:
        model = registry.get_model(name)
        versions = [version_summary(v) for v in registry.list_versions(name)]
        lifecycle = {
            **lifecycle_summary(model),
            "decisions": decisions(
                current_platform().documents.container(LIFECYCLE_CONTAINER), name, 10
            ),
        }
    except ModelNotFound:
        return json_response(
            {"error": f"{name} has no version yet: POST /api/models/{name}/train"}, 404
        )
    except (DocumentStoreError, RegistryUnavailable) as error:
        return _unavailable(error)
    return json_response({**model_summary(model), "lifecycle": lifecycle, "versions": versions})


@bp.route(route="models/{name}/versions/{version}/onnx", methods=["GET"])
@requires(Role.READER)
def get_model_onnx(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params["name"]
    if not known_model(name):
        return _no_model(name)
    try:
        version = parse_version(req.route_params["version"])
        data = current_platform().models.onnx_file(name, version)
    except BadModelRequest as error:
        return json_response({"error": str(error)}, 400)
    except (DocumentStoreError, RegistryUnavailable) as error:
        return _unavailable(error)
    except (ModelNotFound, ModelVersionNotFound, ArtifactNotFound):
        return json_response(
            {"error": f"no version {req.route_params['version'][:16]} of {name[:64]!r}"}, 404
        )
    filename = f"{name}-v{version}.onnx"
    return func.HttpResponse(
        data,
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
