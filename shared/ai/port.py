"""The LLM port: chat completions (whole or streamed) and embeddings, in OpenAI's wire shapes.

The core and the AI routes talk to this interface only; `shared.ai.llm.OpenAiLlm` implements it
on the openai SDK, and tests may implement it with a fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, overload


@dataclass(frozen=True)
class Usage:
    """Tokens as the upstream counted them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def from_wire(cls, usage: Mapping[str, Any] | None) -> Usage | None:
        """From a response's `usage` object; None when absent or malformed."""
        if not isinstance(usage, Mapping):
            return None
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
        total = usage.get("total_tokens")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (prompt, completion)):
            return None
        assert isinstance(prompt, int) and isinstance(completion, int)  # narrowed above
        return cls(prompt, completion, total if isinstance(total, int) else prompt + completion)


@dataclass(frozen=True)
class ChatResult:
    """A whole chat completion: `body` is the upstream's JSON (`object: chat.completion`)."""

    body: dict[str, Any]
    usage: Usage | None
    deployment: str
    model: str


def reply_text(body: Mapping[str, Any]) -> str:
    """The text of a chat completion's first choice ("" when it has none)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""


@dataclass(frozen=True)
class ChatChunk:
    """One streamed chunk: `data` is the upstream's JSON (`object: chat.completion.chunk`)."""

    data: dict[str, Any]

    @property
    def usage(self) -> Usage | None:
        return Usage.from_wire(self.data.get("usage"))

    @property
    def usage_only(self) -> bool:
        """The final usage chunk (no choices), which the gateway strips for an app that did
        not ask for `stream_options.include_usage`. Azure's first chunk (prompt filter
        results) has no choices either, but no usage."""
        return not self.data.get("choices") and self.usage is not None


class ChatStream(Protocol):
    """A stream committed to one deployment, its first chunk already received: iterate it for
    chunks as they arrive. A failure while iterating raises `StreamInterrupted`. `usage` is
    set once the usage chunk has passed (it is always asked for upstream)."""

    deployment: str
    model: str

    @property
    def usage(self) -> Usage | None: ...

    def __aiter__(self) -> AsyncIterator[ChatChunk]: ...

    async def __anext__(self) -> ChatChunk: ...

    async def aclose(self) -> None:
        """Stop early (the app went away), releasing the upstream connection."""
        ...


@dataclass(frozen=True)
class EmbeddingsResult:
    """One vector per input, in input order."""

    vectors: list[list[float]]
    usage: Usage | None
    deployment: str
    model: str


class Llm(Protocol):
    """Chat completions and embeddings, over a pool of deployments.

    Errors (`shared.ai.errors`): `AiNotConfigured` (503), `UnknownModel` (404),
    `ContentFiltered` (400, never retried), `UpstreamRejected` (the upstream's 4xx),
    `NoDeploymentAvailable` (429 with `retry_after`), and `StreamInterrupted` while iterating.
    """

    @overload
    async def chat(
        self, request: Mapping[str, Any], *, stream: Literal[False] = False
    ) -> ChatResult: ...

    @overload
    async def chat(self, request: Mapping[str, Any], *, stream: Literal[True]) -> ChatStream: ...

    async def chat(
        self, request: Mapping[str, Any], *, stream: bool = False
    ) -> ChatResult | ChatStream:
        """Send an OpenAI chat completions body (`model` optional: the default chat model).
        Streamed, it returns once the first chunk has arrived, so an error before that is
        raised here and can still be answered with an HTTP status."""
        ...

    async def embeddings(
        self, texts: Sequence[str], *, model: str | None = None, dimensions: int | None = None
    ) -> EmbeddingsResult:
        """Embed `texts` with `model` (the default embeddings model)."""
        ...

    async def aclose(self) -> None:
        """Close the clients (at the end of the process, or of a test)."""
        ...
