"""The AI routes as the worker calls them (FastAPI requests), with no AI setting: 503 naming
the settings, while the rest of the platform (keys, apps, the ledger) works; hostile bodies
are 400s naming the field; the admin route refuses malformed apps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from functions import ai_apps, ai_gateway, ai_questions
from tests.functions import async_blueprint_function, blueprint_function

pytestmark = pytest.mark.unit

LOOPBACK = {"x-forwarded-for": "127.0.0.1"}  # the local developer, who holds every role
LIMITS = {"tokens_per_minute": 10_000, "requests_per_minute": 100, "token_quota": 100_000}


def _post(path: str, body: Any, headers: dict[str, str] | None = None) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.HttpRequest(
        "POST", f"http://localhost{path}", body=raw, headers={**LOOPBACK, **(headers or {})}
    )


async def _issue() -> str:
    create = async_blueprint_function(ai_apps.bp, "create_ai_app")
    answer = await create(_post("/api/ai/apps", {"name": "app", "limits": LIMITS}))
    assert answer.status_code == 201, answer.get_body()
    return str(json.loads(answer.get_body())["key"])


async def _chat(body: Any, key: str) -> func.HttpResponse:
    chat = async_blueprint_function(ai_gateway.bp, "chat_completions")
    return await chat(_post("/api/openai/v1/chat/completions", body, {"api-key": key}))


async def test_without_ai_settings_the_routes_answer_503_naming_them(platform_env: Path) -> None:
    key = await _issue()
    answer = await _chat({"messages": [{"role": "user", "content": "hi"}]}, key)
    assert answer.status_code == 503
    message = json.loads(answer.get_body())["error"]["message"]
    assert "OPENAI_BASE_URL" in message and "AZURE_OPENAI_ENDPOINT" in message
    ask = async_blueprint_function(ai_questions.bp, "ask")
    refused = await ask(_post("/api/ask", {"question": "How many payments yesterday?"}))
    assert refused.status_code == 503 and "AI_CHAT_MODEL" in json.loads(refused.get_body())["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[]", None),
        (b'{"messages": NaN}', None),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [1]}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 2**40}, "max_tokens"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 5,
                "max_completion_tokens": 5,
            },
            "max_tokens",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "model": 7}, "model"),
        ({"messages": [{"role": "user", "content": "x"}], "model": "gpt 4\n"}, "model"),
        ({"messages": [{"role": "user", "content": "x"}], "stream_options": {}}, "stream_options"),
    ],
)
async def test_hostile_chat_bodies_are_400_naming_the_field(
    platform_env: Path, body: Any, param: str | None
) -> None:
    answer = await _chat(body, await _issue())
    assert answer.status_code == 400, answer.get_body()
    error = json.loads(answer.get_body())["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert answer.headers["x-ratelimit-remaining-tokens"] == str(LIMITS["tokens_per_minute"])


async def test_an_unknown_key_is_401_and_a_user_is_not_an_app(platform_env: Path) -> None:
    unknown = await _chat({"messages": []}, "pgw-0123456789abcdef-" + "A" * 43)
    assert unknown.status_code == 401
    chat = async_blueprint_function(ai_gateway.bp, "chat_completions")
    developer = await chat(_post("/api/openai/v1/chat/completions", {"messages": []}))
    assert developer.status_code == 403
    assert json.loads(developer.get_body())["error"]["code"] == "unknown_app"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"name": "", "limits": LIMITS},
        {"name": "x", "limits": {**LIMITS, "tokens_per_minute": -5}},
        {"name": "x", "limits": {**LIMITS, "surprise": 1}},
        {"name": "x", "limits": LIMITS, "entra_app_id": "not-a-guid"},
        {"name": "x", "limits": LIMITS, "key": "pgw-mine"},
        ["not", "an", "object"],
    ],
)
def test_malformed_apps_are_400(platform_env: Path, body: Any) -> None:
    create = blueprint_function(ai_apps.bp, "create_ai_app")
    answer = create(_post("/api/ai/apps", body))
    assert answer.status_code == 400, answer.get_body()


def test_limits_are_changed_and_an_app_is_revoked_over_the_admin_route(platform_env: Path) -> None:
    create = blueprint_function(ai_apps.bp, "create_ai_app")
    app = json.loads(create(_post("/api/ai/apps", {"name": "a", "limits": LIMITS})).get_body())
    app_id = app["app"]["id"]
    assert app["key"].startswith("pgw-")
    patch = blueprint_function(ai_apps.bp, "update_ai_app")
    changed = patch(
        func.HttpRequest(
            "PATCH",
            f"http://localhost/api/ai/apps/{app_id}",
            body=json.dumps({"limits": {"requests_per_minute": 7}}).encode(),
            headers=LOOPBACK,
            route_params={"app_id": app_id},
        )
    )
    assert json.loads(changed.get_body())["app"]["limits"]["requests_per_minute"] == 7
    listed = blueprint_function(ai_apps.bp, "list_ai_apps")(
        func.HttpRequest("GET", "http://localhost/api/ai/apps", body=b"", headers=LOOPBACK)
    )
    assert "key" not in json.loads(listed.get_body())["apps"][0]
    usage = blueprint_function(ai_apps.bp, "ai_usage")(
        func.HttpRequest(
            "GET",
            "http://localhost/api/ai/usage",
            body=b"",
            headers=LOOPBACK,
            params={"since": "yesterday"},
        )
    )
    assert usage.status_code == 400


@pytest.mark.parametrize(("roles", "shown"), [((), "***"), (("PII.Read",), "ab12")])
def test_personal_columns_of_an_answer_are_masked_without_pii_read(
    monkeypatch: pytest.MonkeyPatch, roles: tuple[str, ...], shown: str
) -> None:
    from shared.identity.principal import Principal

    who = Principal("user", "u", "t", frozenset(("Platform.Analyst", *roles)))
    monkeypatch.setattr(ai_questions, "caller", lambda: who)
    body = {"columns": ["merchant", "card_number"], "rows": [["m1", "ab12"]]}
    assert ai_questions._masked(body)["rows"] == [["m1", shown]]
