"""The model lifecycle's part of the OpenAPI description: retraining, approvals, monitoring."""

from __future__ import annotations

from typing import Any

from shared.models.alerts import ALERTING
from shared.models.service import COMMENT_LIMIT
from shared.models.training import MATURITY_LIMITS_H
from shared.openapi_common import KEY_REFUSED, KEYED, error, json_answer, not_found, ref

_GATED = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "a model the lifecycle gates (others answer 404)",
    "schema": {"enum": list(ALERTING)},
}

LIFECYCLE_ANSWERS: dict[str, Any] = {
    "Lifecycle": {
        "type": "object",
        "required": ["stage", "traffic"],
        "properties": {
            "stage": {"type": "string"},
            "traffic": {"type": "object", "additionalProperties": {"type": "integer"}},
            "instance_id": {"type": ["string", "null"]},
            "decisions": {"type": "array", "items": {"type": "object"}},
        },
    },
    "RetrainOptions": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "label_maturity_hours": {
                "type": "number",
                "minimum": MATURITY_LIMITS_H[0],
                "maximum": MATURITY_LIMITS_H[1],
            }
        },
    },
    "Approval": {
        "type": "object",
        "additionalProperties": False,
        "required": ["decision"],
        "properties": {
            "decision": {"enum": ["approve", "reject"]},
            "comment": {"type": "string", "maxLength": COMMENT_LIMIT},
        },
    },
    "ApprovalAnswer": {
        "type": "object",
        "required": ["instanceId", "decision"],
        "properties": {"instanceId": {"type": "string"}, "decision": {"type": "string"}},
    },
    "NotAwaitingApproval": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "step": {"type": ["string", "null"]}},
    },
    "MonitoringReports": {
        "type": "object",
        "required": ["model", "reports"],
        "properties": {
            "model": {"type": "string"},
            "reports": {"type": "array", "items": {"type": "object"}},
        },
    },
    "MonitoringRun": {
        "type": "object",
        "required": ["report"],
        "properties": {
            "report": {"type": "object"},
            "retraining": {"type": ["object", "null"]},
        },
    },
}


def lifecycle_paths() -> dict[str, Any]:
    retrain = {
        "post": {
            "operationId": "retrain_model",
            "summary": "Retrain, gate, approve and roll out a challenger (one at a time)",
            "security": KEYED,
            "parameters": [_GATED],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": ref("RetrainOptions")}},
            },
            "responses": {
                "200": json_answer(
                    ref("CheckStatus"), "this hour's retraining, or the one running"
                ),
                "202": json_answer(ref("CheckStatus"), "started; follow statusQueryGetUri"),
                "400": error("the body is not a retraining request"),
                **KEY_REFUSED,
                "404": not_found("a model the lifecycle does not gate"),
            },
        }
    }
    approvals = {
        "post": {
            "operationId": "approve_model",
            "summary": "Approve or reject a challenger that passed the gate",
            "security": KEYED,
            "parameters": [
                _GATED,
                {
                    "name": "instance",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("Approval")}},
            },
            "responses": {
                "202": json_answer(ref("ApprovalAnswer"), "the answer is on its way"),
                "400": error("the body is not an approval"),
                **KEY_REFUSED,
                "404": not_found("no such retraining of the model"),
                "409": json_answer(ref("NotAwaitingApproval"), "not waiting for an approval"),
            },
        }
    }
    monitoring = {
        "get": {
            "operationId": "get_model_monitoring",
            "summary": "The model's latest monitoring reports, newest first",
            "security": KEYED,
            "parameters": [
                _GATED,
                {
                    "name": "top",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
            ],
            "responses": {
                "200": json_answer(ref("MonitoringReports"), "the reports"),
                "400": error("top is not 1 to 100"),
                **KEY_REFUSED,
                "404": not_found("a model the lifecycle does not gate"),
                "503": error("the lake cannot be read"),
            },
        },
        "post": {
            "operationId": "run_model_monitoring",
            "summary": "Monitor the model now; drift that calls for it starts a retraining",
            "security": KEYED,
            "parameters": [_GATED],
            "responses": {
                "200": json_answer(ref("MonitoringRun"), "the report, and any retraining"),
                **KEY_REFUSED,
                "404": not_found("a model the lifecycle does not gate"),
                "409": error("nothing to monitor yet: no champion, or no data"),
                "503": error("the lake or the registry cannot be read"),
            },
        },
    }
    return {
        "/api/models/{name}/retrain": retrain,
        "/api/models/{name}/approvals/{instance}": approvals,
        "/api/models/{name}/monitoring": monitoring,
    }
