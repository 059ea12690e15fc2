"""The AI gateway's part of the OpenAPI description: the OpenAI-compatible surface and the admin
routes of its apps and usage."""

from __future__ import annotations

from typing import Any

from shared.ai.app_limits import BOUNDS, QUOTA_PERIODS
from shared.ai.gateway_calls import MAX_EMBEDDING_INPUTS
from shared.openapi_common import KEY_REFUSED, KEYED, error, json_answer, not_found, ref

_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": ["string", "null"]},
                        "param": {"type": ["string", "null"]},
                        "code": {"type": ["string", "null"]},
                    },
                },
            ]
        }
    },
}
_LIMITS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{
            name: {"type": "integer", "minimum": low, "maximum": high}
            for name, (low, high) in BOUNDS.items()
        },
        "quota_period": {"enum": list(QUOTA_PERIODS)},
    },
}
_REMAINING_HEADERS = {
    "x-ratelimit-remaining-tokens": {"schema": {"type": "string"}},
    "x-ratelimit-remaining-requests": {"schema": {"type": "string"}},
}

AI_ANSWERS: dict[str, Any] = {
    "Question": {
        "type": "object",
        "additionalProperties": False,
        "required": ["question"],
        "properties": {"question": {"type": "string", "minLength": 1, "maxLength": 2000}},
    },
    "AskAnswer": {
        "type": "object",
        "required": ["question", "sql", "columns", "rows", "summary"],
        "properties": {
            "question": {"type": "string"},
            "sql": {"type": "string"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "array"}},
            "summary": {"type": ["string", "null"]},
        },
    },
    "Answer": {
        "type": "object",
        "required": ["answer", "citations"],
        "properties": {
            "answer": {"type": "string"},
            "citations": {"type": "array", "items": {"type": "object"}},
        },
    },
    "OpenAiError": _OPENAI_ERROR,
    "ChatRequest": {
        "type": "object",
        "required": ["messages"],
        "description": "OpenAI's chat completions body; fields other than these pass through",
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 128},
            "messages": {"type": "array", "minItems": 1, "items": {"type": "object"}},
            "stream": {"type": "boolean"},
            "stream_options": {"type": "object"},
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
        },
    },
    "EmbeddingsRequest": {
        "type": "object",
        "required": ["input"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "maxLength": 128},
            "input": {
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_EMBEDDING_INPUTS,
                        "items": {"type": "string", "minLength": 1},
                    },
                ]
            },
            "dimensions": {"type": "integer", "minimum": 1, "maximum": 65536},
        },
    },
    "AiAppRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "limits"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "limits": {
                **_LIMITS,
                "required": ["tokens_per_minute", "requests_per_minute", "token_quota"],
            },
            "entra_app_id": {"type": "string", "format": "uuid"},
        },
    },
    "AiAppLimits": {
        "type": "object",
        "additionalProperties": False,
        "required": ["limits"],
        "properties": {"limits": _LIMITS},
    },
    "AiApp": {"type": "object", "required": ["app"], "properties": {"app": {"type": "object"}}},
    "AiApps": {
        "type": "object",
        "required": ["apps"],
        "properties": {"apps": {"type": "array", "items": {"type": "object"}}},
    },
    "AiUsage": {
        "type": "object",
        "required": ["requests", "prompt_tokens", "completion_tokens", "cost_usd"],
        "properties": {
            "requests": {"type": "integer"},
            "prompt_tokens": {"type": "integer"},
            "completion_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
            "cost_usd": {"type": "number"},
            "unpriced_requests": {"type": "integer"},
            "by_outcome": {"type": "object"},
        },
    },
}


def _openai_error(description: str, headers: bool = True) -> dict[str, Any]:
    answer = json_answer(ref("OpenAiError"), description)
    if headers:
        answer["headers"] = dict(_REMAINING_HEADERS)
    return answer


def _openai(operation_id: str, summary: str, request: str, streams: bool) -> dict[str, Any]:
    ok = json_answer({"type": "object"}, "the upstream's answer, in OpenAI's shape")
    ok["headers"] = dict(_REMAINING_HEADERS)
    if streams:
        ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": (
                "An app's gateway key in `Authorization: Bearer` or `api-key`, or an Entra ID "
                "token of a registered application holding AI.User."
            ),
            "security": [],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref(request)}},
            },
            "responses": {
                "200": ok,
                "400": _openai_error("a malformed request, or one the content filter refused"),
                "403": _openai_error(
                    "over the app's quota, the caller is not an app, or it lacks AI.User"
                ),
                "404": _openai_error("no deployment serves the model"),
                "429": _openai_error("over a rate limit, or every deployment is busy"),
                "502": _openai_error("the upstream failed"),
                "503": _openai_error("the AI settings are not set (the answer names them)"),
            },
        }
    }


_APP_ID = {
    "name": "app_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 100},
}


def _admin(
    operation_id: str, summary: str, answers: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": "Behind the host's admin (master) key, for Platform.Admin callers.",
        "security": KEYED,
        "responses": {**answers, **KEY_REFUSED},
        **extra,
    }


def _question(operation_id: str, summary: str, answer: str, extra: dict[str, Any]) -> Any:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "security": KEYED,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("Question")}},
            },
            "responses": {
                "200": json_answer(ref(answer), "the answer"),
                "400": error("not a question (empty, too long, not text)"),
                "502": error("the LLM (or the search service) failed"),
                "503": error("no chat model is configured (the answer names the settings)"),
                **extra,
                **KEY_REFUSED,
            },
        }
    }


def _created() -> dict[str, Any]:
    answer = json_answer(ref("AiApp"), "the app (and its key, once)")
    app_id = {"app_id": "$response.body#/app/id"}
    answer["links"] = {
        name: {"operationId": operation, "parameters": app_id}
        for name, operation in (
            ("GetApp", "get_ai_app"),
            ("UpdateApp", "update_ai_app"),
            ("RevokeApp", "revoke_ai_app"),
        )
    }
    return answer


def ai_paths() -> dict[str, Any]:
    app_body = {"required": True, "content": {"application/json": {"schema": ref("AiAppRequest")}}}
    limits_body = {
        "required": True,
        "content": {"application/json": {"schema": ref("AiAppLimits")}},
    }
    return {
        "/api/openai/v1/chat/completions": _openai(
            "chat_completions", "Chat completions, whole or streamed (SSE)", "ChatRequest", True
        ),
        "/api/openai/v1/embeddings": _openai(
            "embeddings", "Embeddings", "EmbeddingsRequest", False
        ),
        "/api/ai/apps": {
            "post": _admin(
                "create_ai_app",
                "Issue an app and its key (shown once), or register an Entra ID application",
                {
                    "201": _created(),
                    "400": error("a malformed app or limits"),
                    "409": error("the Entra ID application is registered already"),
                },
                requestBody=app_body,
            ),
            "get": _admin(
                "list_ai_apps", "The gateway's apps", {"200": json_answer(ref("AiApps"), "apps")}
            ),
        },
        "/api/ai/apps/{app_id}": {
            "get": _admin(
                "get_ai_app",
                "One app, and what it has left",
                {"200": json_answer(ref("AiApp"), "the app"), "404": not_found("no such app")},
                parameters=[_APP_ID],
            ),
            "patch": _admin(
                "update_ai_app",
                "Change some of an app's limits",
                {
                    "200": json_answer(ref("AiApp"), "the app"),
                    "400": error("malformed limits"),
                    "404": not_found("no such app"),
                },
                parameters=[_APP_ID],
                requestBody=limits_body,
            ),
            "delete": _admin(
                "revoke_ai_app",
                "Revoke an app: its key is dead at once",
                {"200": json_answer(ref("AiApp"), "the app"), "404": not_found("no such app")},
                parameters=[_APP_ID],
            ),
        },
        "/api/ask": _question(
            "ask",
            "A question in plain language over the gold tables",
            "AskAnswer",
            {
                "422": error("the SQL the LLM wrote was refused by the gate, or failed"),
                "504": error("the query ran past its time limit"),
            },
        ),
        "/api/answers": _question(
            "answers", "An answer from the docs and the catalog, with citations", "Answer", {}
        ),
        "/api/ai/usage": {
            "get": _admin(
                "ai_usage",
                "The usage ledger's sums",
                {
                    "200": json_answer(ref("AiUsage"), "the sums"),
                    "400": error("a parameter that is not as described"),
                },
                parameters=[
                    {"name": "app", "in": "query", "schema": {"type": "string", "maxLength": 128}},
                    {"name": "since", "in": "query", "schema": {"type": "string"}},
                    {"name": "until", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
    }
