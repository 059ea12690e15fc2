"""The OpenAPI 3.1 description of the app's HTTP API, served at `GET /api/openapi.json`.

The CloudEvents envelopes and the contracts' data come from the msgspec contracts themselves
(`msgspec.json.schema_components` on the same Structs that validate events), never written
twice; the answers' shapes are written here, and schemathesis checks every response against
them (`tests/integration/test_api_schemathesis.py`). A test fails when the app has an HTTP route
that this description lacks.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from shared import __version__
from shared.events.contracts import ContractRegistry
from shared.events.envelope import envelope_type
from shared.events.intake import BATCH, MAX_EVENTS_PER_REQUEST, PLAIN_JSON, SINGLE
from shared.events.protection import PROTECTION_PROPERTY
from shared.identity.roles import Role
from shared.openapi_ai import AI_ANSWERS, ai_paths
from shared.openapi_common import HOST_LIMITS as _HOST_LIMITS
from shared.openapi_common import KEY_REFUSED as _KEY_REFUSED
from shared.openapi_common import KEYED as _KEYED
from shared.openapi_common import REF_TEMPLATE
from shared.openapi_common import error as _error
from shared.openapi_common import json_answer as _json
from shared.openapi_common import not_found as _not_found
from shared.openapi_common import ref as _ref
from shared.openapi_lifecycle import LIFECYCLE_ANSWERS, lifecycle_paths
from shared.openapi_models import MODEL_ANSWERS, model_paths

# An extension attribute's name: 1 to 20 lower-case letters or digits, and none of the
# standard attributes (whose own schemas apply to them).
_EXTENSION_NAME = (
    "^(?!(specversion|id|source|type|time|subject|datacontenttype|dataschema|data)$)[a-z0-9]{1,20}$"
)
_EXTENSION_VALUE = ["string", "number", "boolean", "null"]

# Each route's permission, as `functions/` declares it next to the route (a test keeps the two
# the same), and whether it is a privileged action (audited first, 503 without the trail).
PERMISSIONS: dict[str, tuple[Role, bool]] = {
    "openapi": (Role.READER, False),
    "post_events": (Role.WRITER, False),
    "start_pipeline_run": (Role.OPERATOR, True),
    "list_pipeline_runs": (Role.OPERATOR, False),
    "cancel_pipeline_run": (Role.OPERATOR, True),
    "audit_records": (Role.ADMIN, False),
    "train_model": (Role.OPERATOR, True),
    "batch_score_model": (Role.OPERATOR, True),
    "list_models": (Role.READER, False),
    "get_model": (Role.READER, False),
    "get_model_onnx": (Role.READER, False),
    "retrain_model": (Role.OPERATOR, True),
    "approve_model": (Role.OPERATOR, True),
    "get_model_monitoring": (Role.READER, False),
    "run_model_monitoring": (Role.OPERATOR, True),
    "list_alerts": (Role.ANALYST, False),
    "score": (Role.ANALYST, False),
    "recommend": (Role.ANALYST, False),
    "chat_completions": (Role.AI_USER, False),
    "embeddings": (Role.AI_USER, False),
    "create_ai_app": (Role.ADMIN, True),
    "list_ai_apps": (Role.ADMIN, False),
    "get_ai_app": (Role.ADMIN, False),
    "update_ai_app": (Role.ADMIN, True),
    "revoke_ai_app": (Role.ADMIN, True),
    "ai_usage": (Role.ADMIN, False),
    "ask": (Role.ANALYST, False),
    "answers": (Role.READER, False),
}

_ANSWERS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "Rejection": {
        "type": "object",
        "required": ["index", "id", "reason", "error"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "id": {"type": ["string", "null"]},
            "reason": {"type": "string"},
            "error": {"type": "string"},
        },
    },
    "IntakeAnswer": {
        "type": "object",
        "required": ["accepted", "rejected"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "rejected": {"type": "array", "items": _ref("Rejection"), "maxItems": 100},
            "rejected_total": {"type": "integer"},
            "rejected_by_reason": {"type": "object", "additionalProperties": {"type": "integer"}},
            "error": {"type": "string", "description": "a single event's rejection"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "version", "uptime_s", "backends"],
        "properties": {
            "status": {"enum": ["healthy", "unhealthy"]},
            "version": {"type": "string"},
            "uptime_s": {"type": "number"},
            "backends": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["adapter", "ready", "detail", "latency_ms"],
                    "properties": {
                        "adapter": {"enum": ["local", "azure"]},
                        "ready": {"type": "boolean"},
                        "detail": {"type": "string"},
                        "latency_ms": {"type": "number"},
                    },
                },
            },
        },
    },
    "CheckStatus": {
        "type": "object",
        "description": "The Durable Functions check-status links of the run",
        "required": ["id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri"],
        "properties": {
            "id": {"type": "string"},
            "statusQueryGetUri": {"type": "string"},
            "sendEventPostUri": {"type": "string"},
            "terminatePostUri": {"type": "string"},
            "purgeHistoryDeleteUri": {"type": "string"},
            "restartPostUri": {"type": "string"},
            "suspendPostUri": {"type": "string"},
            "resumePostUri": {"type": "string"},
        },
    },
    "RunInProgress": {
        "type": "object",
        "required": ["error", "instanceId"],
        "properties": {"error": {"type": "string"}, "instanceId": {"type": "string"}},
    },
    "Run": {
        "type": "object",
        "required": ["instanceId", "runtimeStatus", "createdTime", "lastUpdatedTime"],
        "properties": {
            "instanceId": {"type": "string"},
            "runtimeStatus": {"type": ["string", "null"]},
            "createdTime": {"type": ["string", "null"]},
            "lastUpdatedTime": {"type": ["string", "null"]},
            "customStatus": {},
            "status": {"type": ["string", "null"]},
            "totals": {"type": ["object", "null"]},
            "failures": {"type": ["array", "object", "null"]},
        },
    },
    "Runs": {
        "type": "object",
        "required": ["pipeline", "runs"],
        "properties": {
            "pipeline": {"type": "string"},
            "runs": {"type": "array", "items": _ref("Run")},
        },
    },
    "Cancellation": {
        "type": "object",
        "required": ["instanceId", "runtimeStatus", "stopping", "cancelled", "message"],
        "properties": {
            "instanceId": {"type": "string"},
            "runtimeStatus": {"type": "string"},
            "stopping": {"type": "boolean"},
            "cancelled": {"type": "array", "items": {"type": "string"}},
            "message": {"type": "string"},
        },
    },
}


def _events() -> tuple[dict[str, Any], list[str]]:
    """The CloudEvent schemas of the newest version of every contract, from the Structs, as the
    intake takes them: unknown data fields are kept (`extras`), and extension attributes (1 to
    20 lower-case letters or digits, scalar values) ride beside the standard ones."""
    contracts = ContractRegistry().latest()
    envelopes = [envelope_type(contract) for contract in contracts]
    refs, components = msgspec.json.schema_components(envelopes, ref_template=REF_TEMPLATE)
    for contract, envelope in zip(contracts, envelopes, strict=True):
        components[contract.data.__name__].pop("additionalProperties", None)
        schema = components[envelope.__name__]
        schema["patternProperties"] = {_EXTENSION_NAME: {"type": _EXTENSION_VALUE}}
    return components, [ref["$ref"] for ref in refs]


def _event_paths(events: list[str]) -> dict[str, Any]:
    one = {"oneOf": [{"$ref": ref} for ref in events]}
    # A batch's items are each checked on their own: an item that is no CloudEvent is listed in
    # the answer's `rejected`, beside the valid ones accepted, so the array takes any item.
    many = {
        "type": "array",
        "description": f"at most {MAX_EVENTS_PER_REQUEST} events (413 past it)",
        "items": {"description": "a CloudEvent of one of the event schemas (checked one by one)"},
    }
    return {
        "post": {
            "operationId": "post_events",
            "summary": "Post CloudEvents 1.0: one, or a batch",
            "description": (
                "Valid events are pseudonymized and durably published to the `events` hub "
                f"(with the property `{PROTECTION_PROPERTY}`) before the answer; a batch's "
                "invalid events are listed with their reason while the valid ones are "
                "accepted. Binary content mode (`ce-*` headers, the data as an "
                "`application/json` body) is accepted too. At most 1 MB after any "
                f"`Content-Encoding` (gzip, deflate) and {MAX_EVENTS_PER_REQUEST} events."
            ),
            "security": _KEYED,
            "requestBody": {
                "required": True,
                "content": {
                    SINGLE: {"schema": one},
                    BATCH: {"schema": many},
                    PLAIN_JSON: {"schema": {"oneOf": [one, many]}},
                },
            },
            "responses": {
                "202": _json(_ref("IntakeAnswer"), "the valid events are in the hub"),
                "400": {
                    "description": "not UTF-8 JSON events, or a single invalid event",
                    "content": {
                        "application/json": {
                            "schema": {"anyOf": [_ref("IntakeAnswer"), _ref("Error")]}
                        }
                    },
                },
                **_KEY_REFUSED,
                "413": _error("over 1 MB (inflated) or over the events limit"),
                "415": _error("another content type, charset or content coding"),
                "503": _error("the hub could not take the events: none was accepted"),
            },
        }
    }


_PIPELINE = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "the pipeline; `medallion` is the one there is (others answer 404)",
    "schema": {"enum": ["medallion"]},
}


def _cancel_link(instance_id: str) -> dict[str, Any]:
    """An OpenAPI link from an answer naming a run to that run's cancel (stateful tests)."""
    return {
        "operationId": "cancel_pipeline_run",
        "parameters": {"name": "$request.path.name", "instance_id": instance_id},
    }


def _pipeline_paths() -> dict[str, Any]:
    runs = {
        "post": {
            "operationId": "start_pipeline_run",
            "summary": "Start a run of bronze to silver to gold",
            "security": _KEYED,
            "parameters": [_PIPELINE],
            "responses": {
                "202": {
                    **_json(_ref("CheckStatus"), "started; follow statusQueryGetUri"),
                    "links": {"CancelRun": _cancel_link("$response.body#/id")},
                },
                **_KEY_REFUSED,
                "404": _not_found("no such pipeline"),
                "409": {
                    **_json(_ref("RunInProgress"), "a run is in progress"),
                    "links": {"CancelRun": _cancel_link("$response.body#/instanceId")},
                },
            },
        },
        "get": {
            "operationId": "list_pipeline_runs",
            "summary": "Recent runs, newest first",
            "security": _KEYED,
            "parameters": [
                _PIPELINE,
                {
                    "name": "top",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 20},
                },
            ],
            "responses": {
                "200": _json(_ref("Runs"), "the runs"),
                "400": _error("top is not a number from 1 to 500"),
                **_KEY_REFUSED,
                "404": _not_found("no such pipeline"),
            },
        },
    }
    cancel = {
        "post": {
            "operationId": "cancel_pipeline_run",
            "summary": "Stop a run between steps and cancel its remote gold runs",
            "security": _KEYED,
            "parameters": [
                _PIPELINE,
                {
                    "name": "instance_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": _json(_ref("Cancellation"), "what the cancel did"),
                **_KEY_REFUSED,
                "404": _not_found("no such pipeline or run"),
            },
        }
    }
    return {
        "/api/pipelines/{name}/runs": runs,
        "/api/pipelines/{name}/runs/{instance_id}/cancel": cancel,
    }


def _guard(operation: dict[str, Any]) -> None:
    """Add an operation's permission: the bearer scheme beside any key, 401, 403, and 503 for a
    privileged action."""
    found = PERMISSIONS.get(operation["operationId"])
    if found is None:
        return
    permission, privileged = found
    operation["x-permission"] = permission.value
    operation["security"] = [
        {**requirement, "bearer": []} for requirement in operation.get("security") or [{}]
    ]
    responses = operation["responses"]
    responses.update(_KEY_REFUSED)
    # An operation's own 403 (the gateway's, in OpenAI's shape) also covers the guard's.
    responses.setdefault("403", _error(f"the caller lacks the permission {permission.value}"))
    if privileged:
        responses.setdefault("503", _error("the audit trail cannot record the action"))


def _audit_paths() -> dict[str, Any]:
    def text(name: str, description: str, **schema: Any) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": {"type": "string", **schema},
        }

    record = {
        "type": "object",
        "required": ["id", "partition", "seq", "time", "action", "outcome", "actor", "hash"],
        "properties": {
            "id": {"type": "string"},
            "partition": {"type": "string", "description": "the UTC hour of its chain"},
            "seq": {"type": "integer"},
            "time": {"type": "string"},
            "action": {"type": "string"},
            "outcome": {"enum": ["allowed", "success", "failure", "denied"]},
            "actor": {"type": "object"},
            "resource": {"type": "string"},
            "reason": {"type": "string"},
            "status": {"type": ["integer", "null"]},
            "client": {"type": "string"},
            "traceparent": {"type": "string"},
            "prev": {"type": "string"},
            "hash": {"type": "string"},
        },
    }
    page = {
        "type": "object",
        "required": ["records", "continuation"],
        "properties": {
            "records": {"type": "array", "items": record},
            "continuation": {"type": ["string", "null"]},
        },
    }
    return {
        "/api/audit": {
            "get": {
                "operationId": "audit_records",
                "summary": "Audit records, newest first",
                "security": _KEYED,
                "parameters": [
                    text("actor", "the actor's object id or client id", maxLength=128),
                    text("action", "an action (authz_fail, pipeline_started, ...)", maxLength=64),
                    {
                        "name": "outcome",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["allowed", "success", "failure", "denied"]},
                    },
                    text(
                        "since", "records at or after this time (with a zone)", format="date-time"
                    ),
                    {
                        "name": "top",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    text(
                        "continuation",
                        "the token of the previous page (anything else is a 400)",
                        maxLength=2048,
                    ),
                ],
                "responses": {
                    "200": _json(page, "a page of records"),
                    "400": _error("a parameter that is not as described"),
                    "503": _error("the audit trail cannot answer"),
                },
            }
        }
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The whole description (built once; it depends on the code only)."""
    event_schemas, events = _events()
    health = {
        "get": {
            "operationId": "health",
            "summary": "The version, the uptime and each backend's readiness",
            "security": [],
            "responses": {
                "200": _json(_ref("Health"), "every backend is ready"),
                "503": _json(_ref("Health"), "a backend is not ready"),
            },
        }
    }
    description = {
        "get": {
            "operationId": "openapi",
            "summary": "This description",
            "security": [{"bearer": []}],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
        }
    }
    paths = {
        "/api/health": health,
        "/api/openapi.json": description,
        "/api/events": _event_paths(events),
        **_pipeline_paths(),
        **_audit_paths(),
        **model_paths(),
        **lifecycle_paths(),
        **ai_paths(),
    }
    for operations in paths.values():
        for operation in operations.values():
            _guard(operation)
            operation["responses"].update(_HOST_LIMITS)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Data and AI platform on Azure Functions",
            "version": __version__,
            "description": (
                "Event intake, the medallion pipeline's runs, the models, the audit trail "
                "and health."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                **event_schemas,
                **_ANSWERS,
                **MODEL_ANSWERS,
                **LIFECYCLE_ANSWERS,
                **AI_ANSWERS,
            },
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "An Entra ID access token with the app role the operation names in "
                        "`x-permission` (PLATFORM_AUTH=entra), or one from the devhost's local "
                        "issuer; under `make run` a loopback caller needs none."
                    ),
                },
            },
        },
    }
