"""The AI gateway's OpenAI-compatible surface: any OpenAI client works by changing only its base
URL to `<host>/api/openai/v1` and its key to a gateway key.

- `POST /api/openai/v1/chat/completions`: plain JSON, or with `"stream": true` OpenAI-framed
  server-sent events (`data: {...}` events, `data: [DONE]`), an error inside the stream as a
  final event, and `: keep-alive` comments when the upstream is slow.
- `POST /api/openai/v1/embeddings`.

The caller is an app: its gateway key in `Authorization: Bearer` or `api-key`, or an Entra ID
token of a registered application, holding `AI.User`. The host's function keys are not asked
for (`ANONYMOUS`): OpenAI clients cannot send them, and the app's key is checked instead. Every
answer carries `x-ratelimit-remaining-tokens` and `x-ratelimit-remaining-requests`; errors are
in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`).

These routes are written for the FastAPI types, so streams go out chunk by chunk; the app's
other routes are served through them too (`functions.http_types`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response, StreamingResponse

from functions.access import caller, requires
from shared.ai.apps import App
from shared.ai.gateway import AiGateway, Answer, error_body
from shared.ai.gateway_calls import (
    MAX_BODY_BYTES,
    BadCall,
    chat_call,
    embeddings_call,
    read_json,
)
from shared.ai.setting_checks import AiSettingsError
from shared.bootstrap import current_platform
from shared.identity.roles import Role

bp = func.Blueprint()


@bp.route(route="openai/v1/chat/completions", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@requires(Role.AI_USER)
async def chat_completions(req: Request) -> Response:
    found = await _caller_app(req)
    if isinstance(found, Response):
        return found
    gateway, app, body = found
    try:
        call = chat_call(body)
    except BadCall as error:
        return await _refused(gateway, app, error)
    answer = await gateway.chat(call, gateway.begin(app, call.stream, call.model))
    if isinstance(answer, Answer):
        return _json(answer.status, answer.body, answer.headers)
    return StreamingResponse(answer.chunks, status_code=200, headers=answer.headers)


@bp.route(route="openai/v1/embeddings", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@requires(Role.AI_USER)
async def embeddings(req: Request) -> Response:
    found = await _caller_app(req)
    if isinstance(found, Response):
        return found
    gateway, app, body = found
    try:
        call = embeddings_call(body)
    except BadCall as error:
        return await _refused(gateway, app, error)
    answer = await gateway.embeddings(call, gateway.begin(app, False, call.model))
    return _json(answer.status, answer.body, answer.headers)


async def _caller_app(req: Request) -> tuple[AiGateway, App, dict[str, Any]] | Response:
    """The gateway, the calling app and its JSON body; or the answer that refuses it."""
    platform = current_platform()
    try:
        gateway = platform.ai
    except AiSettingsError as error:
        return _json(503, error_body(str(error), "service_unavailable"))
    principal = caller()
    app = gateway.apps.just_authenticated(principal)
    if app is None:
        app = await _to_thread(gateway.apps.for_principal, principal)
    if app is None:
        message = (
            "the caller is not an app of the gateway: use a gateway key (POST /api/ai/apps "
            "issues one), or register this Entra ID application there"
        )
        return _json(403, error_body(message, "permission_denied", code="unknown_app"))
    try:
        body = read_json(await _body(req))
    except BadCall as error:
        return await _refused(gateway, app, error)
    return gateway, app, body


async def _body(req: Request) -> bytes:
    """The body, read up to one byte past the limit (`read_json` refuses it then)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            break
    return b"".join(chunks)


async def _to_thread(function: Any, *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


async def _refused(gateway: AiGateway, app: App, error: BadCall) -> Response:
    """400 for a malformed request, with what the app has left (every answer says it)."""
    remaining = await _to_thread(gateway.limiter.remaining, app)
    body = error_body(str(error), "invalid_request_error", param=error.param)
    return _json(400, body, remaining.headers())


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )
