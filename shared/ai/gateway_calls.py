"""What an app sends the gateway's OpenAI-compatible surface, checked before anything is spent.

A body is hostile until checked: it must be one JSON object within `MAX_BODY_BYTES`, with the
fields the gateway reads well typed (`messages`, `model`, `stream`, `stream_options`,
`max_tokens` or `max_completion_tokens`; `input` for embeddings). The rest of the body goes to
the upstream as it is, which answers for the fields it knows. A refusal is `BadCall`, which the
route answers 400 in OpenAI's error shape, naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.ai.ledger import MODEL_NAME
from shared.ai.tokens import InvalidPrompt, count_chat_tokens, count_text

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit on one embeddings request
MAX_TOKENS_ASKED = 2**31 - 1
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens")


class BadCall(ValueError):
    """A request the gateway refuses before admission; `param` names the field, if one."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ChatCall:
    """A checked chat completions request: `body` the app's, `prompt_tokens` counted with
    tiktoken, `max_tokens` what it asked for (None: the app's cap), under `output_field`."""

    body: dict[str, Any]
    model: str | None
    stream: bool
    include_usage: bool
    prompt_tokens: int
    max_tokens: int | None
    output_field: str

    def upstream_body(self, max_tokens: int) -> dict[str, Any]:
        """The body to send: the app's, with the reserved `max_tokens` (the capped value)."""
        body = {k: v for k, v in self.body.items() if k not in _OUTPUT_FIELDS}
        body[self.output_field] = max_tokens
        return body


@dataclass(frozen=True)
class EmbeddingsCall:
    """A checked embeddings request: its inputs as texts, their tokens counted."""

    inputs: list[str]
    model: str | None
    dimensions: int | None
    prompt_tokens: int
    single: bool
    base64: bool = False  # the vectors as base64 of little-endian float32 (the SDK's default)


def read_json(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_BODY_BYTES:
        raise BadCall(f"the body is over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise BadCall("the body is empty: send a JSON object")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        raise BadCall(f"the body is not JSON: {str(error)[:120]}") from None
    if not isinstance(body, dict):
        raise BadCall("the body must be a JSON object")
    return body


def chat_call(body: dict[str, Any]) -> ChatCall:
    model = _model(body)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadCall("stream must be true or false", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise BadCall("stream_options must be an object", "stream_options")
    if options is not None and not stream:
        raise BadCall("stream_options is only allowed when stream is true", "stream_options")
    include_usage = bool(options and options.get("include_usage") is True)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadCall("messages must be a non-empty list of message objects", "messages")
    try:
        prompt_tokens = count_chat_tokens(messages, _tools(body))
    except InvalidPrompt as error:
        raise BadCall(str(error), "messages") from None
    max_tokens, field = _max_tokens(body)
    return ChatCall(body, model, stream, include_usage, prompt_tokens, max_tokens, field)


def embeddings_call(body: dict[str, Any]) -> EmbeddingsCall:
    model = _model(body)
    raw = body.get("input")
    single = isinstance(raw, str)
    inputs = [raw] if single else raw
    if not isinstance(inputs, list) or not inputs:
        raise BadCall("input must be a string or a non-empty list of strings", "input")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise BadCall(f"input holds at most {MAX_EMBEDDING_INPUTS} texts", "input")
    if not all(isinstance(text, str) and text for text in inputs):
        raise BadCall("each input is a non-empty string (token arrays are not taken)", "input")
    dimensions = body.get("dimensions")
    if dimensions is not None and not _count(dimensions, 1, 65_536):
        raise BadCall("dimensions must be an integer from 1 to 65536", "dimensions")
    encoding = body.get("encoding_format")
    if encoding not in ("float", "base64", None):
        raise BadCall("encoding_format must be float or base64", "encoding_format")
    try:
        tokens = sum(count_text(text) for text in inputs)
    except InvalidPrompt as error:
        raise BadCall(str(error), "input") from None
    return EmbeddingsCall(inputs, model, dimensions, tokens, single, encoding == "base64")


def _model(body: Mapping[str, Any]) -> str | None:
    model = body.get("model")
    if model is None:
        return None
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):  # as the ledger keeps it
        raise BadCall(
            "model must be a name of at most 128 letters, digits and . _ : / + -", "model"
        )
    return model


def _tools(body: Mapping[str, Any]) -> list[Any] | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise BadCall("tools must be a list", "tools")
    return tools


def _max_tokens(body: Mapping[str, Any]) -> tuple[int | None, str]:
    given = [name for name in _OUTPUT_FIELDS if body.get(name) is not None]
    if len(given) > 1:
        raise BadCall("send max_completion_tokens or max_tokens, not both", given[1])
    if not given:
        return None, "max_tokens"
    name = given[0]
    value = body[name]
    if not _count(value, 1, MAX_TOKENS_ASKED):
        raise BadCall(f"{name} must be a positive integer", name)
    return int(value), name


def _count(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
