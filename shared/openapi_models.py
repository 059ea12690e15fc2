"""The models API's part of the OpenAPI description: training, the registry, the ONNX files,
the alerts."""

from __future__ import annotations

from typing import Any

from shared.models.alerts import ALERTING, MAX_ENTITY, MAX_TOP
from shared.models.batch_scoring import SCORABLE
from shared.models.service import SOURCE
from shared.models.training import MATURITY_LIMITS_H, TRAINERS
from shared.openapi_common import KEY_REFUSED, KEYED, error, json_answer, not_found, ref

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "the model (others answer 404)",
    "schema": {"enum": list(TRAINERS)},
}
_SCORED_NAME = {**_NAME, "schema": {"enum": list(SCORABLE)}}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}

MODEL_ANSWERS: dict[str, Any] = {
    "Model": {
        "type": "object",
        "required": ["name", "latest_version", "aliases", "tags"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "latest_version": {"type": "integer", "minimum": 0},
            "aliases": {"type": "object", "additionalProperties": {"type": "integer"}},
            "tags": _STRINGS,
        },
    },
    "Models": {
        "type": "object",
        "required": ["models"],
        "properties": {"models": {"type": "array", "items": ref("Model")}},
    },
    "ModelVersion": {
        "type": "object",
        "required": ["version", "created_at", "status", "run_id", "metrics", "signature"],
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "created_at": {"type": "string"},
            "status": {"type": "string"},
            "run_id": {"type": "string"},
            "source": {"type": "string"},
            "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
            "params": _STRINGS,
            "tags": _STRINGS,
            "signature": {"type": "object"},
            "input_example": {},
            "training_data": {"type": "object", "additionalProperties": {"type": "integer"}},
            "code_version": {"type": "string"},
            "validation_status": {"type": "string"},
            "validation_reasons": {"type": "array", "items": {"type": "string"}},
        },
    },
    "ModelDetail": {
        "allOf": [
            ref("Model"),
            {
                "type": "object",
                "required": ["versions"],
                "properties": {
                    "lifecycle": ref("Lifecycle"),
                    "versions": {"type": "array", "items": ref("ModelVersion")},
                },
            },
        ]
    },
    "Alert": {
        "type": "object",
        "required": ["id", "type", "entity", "score", "threshold", "model_version", "event_id"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "entity": {"type": "string"},
            "score": {"type": "number"},
            "threshold": {"type": "number"},
            "model_version": {"type": "integer"},
            "event_id": {"type": "string"},
            "event_time": {"type": "string"},
            "raised_at": {"type": "string"},
            "published": {"type": "boolean"},
            "top_features": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "feature": {"type": "string"},
                        "value": {"type": "number"},
                        "contribution": {"type": "number"},
                    },
                },
            },
        },
    },
    "Alerts": {
        "type": "object",
        "required": ["alerts", "continuation"],
        "properties": {
            "alerts": {"type": "array", "items": ref("Alert")},
            "continuation": {"type": ["string", "null"]},
        },
    },
    "ScoreResults": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["score", "decision", "threshold", "reasons", "model", "version"],
                    "properties": {
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                        "decision": {"enum": ["flag", "pass"]},
                        "threshold": {"type": "number"},
                        "reasons": {"type": "array", "items": {"type": "object"}},
                        "model": {"type": "string"},
                        "version": {"type": "integer"},
                    },
                },
            }
        },
    },
    "Recommendation": {
        "type": "object",
        "required": ["user_id", "items", "source", "version"],
        "properties": {
            "user_id": {"type": "string"},
            "items": {"type": "array", "items": {"type": "string"}},
            "source": {"enum": ["cooccurrence", "popularity"]},
            "version": {"type": "integer"},
        },
    },
    "TrainingInProgress": {
        "type": "object",
        "required": ["error", "instanceId"],
        "properties": {"error": {"type": "string"}, "instanceId": {"type": "string"}},
    },
    "BatchScoringOptions": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {
                "type": "integer",
                "minimum": 1,
                "maximum": 999_999_999,
                "description": "the version to score with (the champion by default)",
            },
            "source": {
                "type": "string",
                "pattern": f"^{SOURCE.pattern}$",
                "description": "the table to score (the model's silver table by default)",
            },
        },
    },
    "TrainingOptions": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "label_maturity_hours": {
                "type": "number",
                "minimum": MATURITY_LIMITS_H[0],
                "maximum": MATURITY_LIMITS_H[1],
                "description": "how long a label is waited for (fraud: 120 h by default)",
            }
        },
    },
}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def model_paths() -> dict[str, Any]:
    train = {
        "post": {
            "operationId": "train_model",
            "summary": "Train a model version (a Durable orchestration)",
            "security": KEYED,
            "parameters": [_NAME],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": ref("TrainingOptions")}},
            },
            "responses": {
                "202": json_answer(ref("CheckStatus"), "started; follow statusQueryGetUri"),
                "400": error("the body is not a training request"),
                **KEY_REFUSED,
                "404": not_found("no such model"),
                "409": json_answer(ref("TrainingInProgress"), "a training is in progress"),
            },
        }
    }
    batch_scores = {
        "post": {
            "operationId": "batch_score_model",
            "summary": "Score a table into gold/<model>_scores (a Durable orchestration)",
            "security": KEYED,
            "parameters": [_SCORED_NAME],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": ref("BatchScoringOptions")}},
            },
            "responses": {
                "202": json_answer(ref("CheckStatus"), "started; follow statusQueryGetUri"),
                "400": error("the body is not a batch scoring request"),
                **KEY_REFUSED,
                "404": not_found("no such model, or one not scored in batch"),
                "409": json_answer(ref("TrainingInProgress"), "a batch scoring is in progress"),
            },
        }
    }
    models = {
        "get": {
            "operationId": "list_models",
            "summary": "The registered models, their aliases and latest versions",
            "security": KEYED,
            "responses": {
                "200": json_answer(ref("Models"), "the models"),
                **KEY_REFUSED,
                "503": error("the model registry is unavailable"),
            },
        }
    }
    model = {
        "get": {
            "operationId": "get_model",
            "summary": "A model and its versions, newest first",
            "security": KEYED,
            "parameters": [_NAME],
            "responses": {
                "200": json_answer(ref("ModelDetail"), "the model"),
                **KEY_REFUSED,
                "404": not_found("no such model, or no version of it yet"),
                "503": error("the model registry is unavailable"),
            },
        }
    }
    onnx = {
        "get": {
            "operationId": "get_model_onnx",
            "summary": "A version's ONNX file, for edge devices",
            "security": KEYED,
            "parameters": [
                _NAME,
                {
                    "name": "version",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999},
                },
            ],
            "responses": {
                "200": {
                    "description": "the ONNX graph",
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "400": error("the version is not a whole number from 1"),
                **KEY_REFUSED,
                "404": not_found("no such model or version"),
                "503": error("the model registry is unavailable"),
            },
        }
    }
    alerts = {
        "get": {
            "operationId": "list_alerts",
            "summary": "The alerts the models raised, newest first",
            "security": KEYED,
            "parameters": [
                _query("type", {"enum": list(ALERTING)}),
                _query("entity", {"type": "string", "minLength": 1, "maxLength": MAX_ENTITY}),
                _query("since", {"type": "string", "format": "date-time"}),
                _query("top", {"type": "integer", "minimum": 1, "maximum": MAX_TOP}),
                _query("continuation", {"type": "string", "minLength": 1, "maxLength": 2048}),
            ],
            "responses": {
                "200": json_answer(ref("Alerts"), "a page of alerts"),
                "400": error("a parameter that is not as described"),
                **KEY_REFUSED,
                "503": error("the alerts cannot be read"),
            },
        }
    }
    record = {
        "anyOf": [
            ref("PaymentTransaction"),
            ref("IotTelemetry"),
            {"type": "object", "required": ["specversion", "data"]},
        ]
    }
    score = {
        "post": {
            "operationId": "score",
            "summary": "Score records with the champion and the entities' online features",
            "security": KEYED,
            "parameters": [
                {
                    "name": "model",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": list(ALERTING)},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                record,
                                {"type": "array", "items": record, "minItems": 1, "maxItems": 100},
                            ]
                        }
                    }
                },
            },
            "responses": {
                "200": json_answer(ref("ScoreResults"), "a result per record, in order"),
                "400": error("a record that cannot be scored (the message names it)"),
                **KEY_REFUSED,
                "404": not_found("no such scoring model"),
                "503": error("the model has no champion yet, or the features are unavailable"),
            },
        }
    }
    recommend = {
        "get": {
            "operationId": "recommend",
            "summary": "Items for a user, from its recent items, or what is popular",
            "security": KEYED,
            "parameters": [
                {
                    "name": "user_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                },
                _query("k", {"type": "integer", "minimum": 1, "maximum": 100}),
            ],
            "responses": {
                "200": json_answer(ref("Recommendation"), "the items, best first"),
                "400": error("k is not 1 to 100, or the user id is too long"),
                **KEY_REFUSED,
                "404": not_found("a user id the route cannot hold (the host's answer)"),
                "503": error("the recommendations model has no champion yet"),
            },
        }
    }
    return {
        "/api/score/{model}": score,
        "/api/recommend/{user_id}": recommend,
        "/api/alerts": alerts,
        "/api/models": models,
        "/api/models/{name}": model,
        "/api/models/{name}/train": train,
        "/api/models/{name}/batch-scores": batch_scores,
        "/api/models/{name}/versions/{version}/onnx": onnx,
    }
