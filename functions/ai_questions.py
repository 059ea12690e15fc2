"""Questions to the platform about its own data and documentation.

- `POST /api/ask` `{"question": "..."}` (`Platform.Analyst`): the LLM writes one SQL query from
  the gold tables' schemas and descriptions; the SQL gate admits it or refuses it (422 with the
  gate's reason); it runs in a locked DuckDB with a time limit (504 past it). The answer holds
  the SQL that ran, the rows and a short summary (no row goes to the LLM unless
  `AI_ASK_SHARE_ROWS` is true, and pseudonymized columns never do).
- `POST /api/answers` `{"question": "..."}` (`Platform.Reader`): an answer grounded in the
  platform's documentation and its catalog of contracts and gold tables, with citations.

Both answer 503 naming the settings when no chat model is configured. Their LLM calls are kept
in the usage ledger under the apps `platform.ask` and `platform.answers`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import azure.functions as func

from functions.access import caller, requires
from functions.answers import json_object, json_response
from shared.ai.ask import AskError, LlmCall
from shared.ai.ask_rows import PERSONAL_COLUMNS
from shared.ai.errors import LlmError, NoDeploymentAvailable
from shared.ai.gateway import new_request_id
from shared.ai.knowledge.answers import InvalidQuestion
from shared.ai.knowledge.azure_search import SearchUnavailable
from shared.ai.ledger import UsageEntry
from shared.ai.port import Usage
from shared.ai.setting_checks import AiSettingsError
from shared.bootstrap import Platform, current_platform
from shared.identity.masking import MASK, sees_personal_data
from shared.identity.roles import Role

bp = func.Blueprint()
log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024


@bp.route(route="ask", methods=["POST"])
@requires(Role.ANALYST)
async def ask(req: func.HttpRequest) -> func.HttpResponse:
    platform = current_platform()
    started = time.time()
    try:
        question = _question(req)
        answer = await platform.ask.ask(question)
    except ValueError as error:
        return json_response({"error": str(error)}, 400)
    except AskError as error:
        await _meter_calls(platform, error.calls, started)
        body: dict[str, Any] = {"error": str(error)}
        if error.sql:
            body["sql"] = error.sql
        return json_response(body, error.status)
    except (LlmError, AiSettingsError) as error:
        return _unavailable(error)
    await _meter_calls(platform, answer.calls, started)
    return json_response(_masked(answer.to_json()))


def _masked(body: dict[str, Any]) -> dict[str, Any]:
    """The rows with their personal columns (by name: a contract's personal fields) as `***`
    for a caller without PII.Read. Gold holds no such column today; a query that renames one
    is not caught here (the LLM never sees such values: `shared.ai.ask_rows`)."""
    if sees_personal_data(caller()):
        return body
    columns = [str(name).lower() for name in body.get("columns", [])]
    hidden = {i for i, name in enumerate(columns) if name in PERSONAL_COLUMNS}
    if hidden:
        body["rows"] = [
            [MASK if i in hidden else value for i, value in enumerate(row)]
            for row in body.get("rows", [])
        ]
    return body


async def _meter_calls(platform: Platform, calls: tuple[LlmCall, ...], at: float) -> None:
    for call in calls:
        await _meter(platform, "platform.ask", call.deployment, call.model, call.usage, call.ms, at)


@bp.route(route="answers", methods=["POST"])
@requires(Role.READER)
async def answers(req: func.HttpRequest) -> func.HttpResponse:
    platform = current_platform()
    started = time.time()
    try:
        question = _question(req)
        answer = await platform.answers.answer(question)
    except (ValueError, InvalidQuestion) as error:
        return json_response({"error": str(error)}, 400)
    except SearchUnavailable as error:
        return json_response({"error": str(error)}, 502)
    except (LlmError, AiSettingsError) as error:
        return _unavailable(error)
    total_ms = sum(answer.timings_ms.values())
    await _meter(platform, "platform.answers", None, None, answer.usage, total_ms, started)
    return json_response(answer.to_json())


def _question(req: func.HttpRequest) -> object:
    body = json_object(req, MAX_BODY)
    if set(body) != {"question"}:
        raise ValueError('send {"question": "..."}')
    return body["question"]


def _unavailable(error: LlmError | AiSettingsError) -> func.HttpResponse:
    status = error.status if isinstance(error, LlmError) else 503
    response = json_response({"error": str(error)}, status)
    if isinstance(error, NoDeploymentAvailable):
        response.headers["Retry-After"] = error.retry_after
    return response


async def _meter(
    platform: Platform,
    app: str,
    deployment: str | None,
    model: str | None,
    usage: Usage | None,
    ms: float,
    at: float,
) -> None:
    """One ledger entry for one of the platform's own LLM calls (a lost one is logged)."""
    entry = UsageEntry(
        request_id=new_request_id(),
        app=app,
        outcome="ok",
        deployment=deployment,
        model=model,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        latency_total_ms=min(ms, 86_400_000.0),
        at=at,
    )
    try:
        await asyncio.to_thread(platform.ai_stores.ledger.record, entry)
    except Exception:
        log.exception("the usage of %s could not be recorded", app)
