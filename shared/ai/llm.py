"""The LLM port on the openai SDK: chat and embeddings over a pool of deployments per model.

Build one `OpenAiLlm` per process from `load_ai_settings()` and close it at the end. With
nothing configured it still builds, and every call raises `AiNotConfigured` naming the settings
to set (a 503 at the AI routes); nothing else depends on it. The `openai` package (slow to
import) is loaded by the first call, not by importing this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from shared.ai.breaker import BreakerPolicy
from shared.ai.clients import SdkClients, TokenProvider
from shared.ai.errors import AiNotConfigured, InvalidRequest
from shared.ai.pool import DeploymentPool
from shared.ai.port import ChatChunk, ChatResult, ChatStream, EmbeddingsResult, Usage
from shared.ai.settings import AiSettings, Capability, Deployment
from shared.ai.sse_reader import RawChunks
from shared.ai.stream import PooledChatStream
from shared.ai.upstream import UpstreamEmpty, UpstreamMalformed, classify

if TYPE_CHECKING:
    pass

# Keys of the app's body that the port sets itself, per deployment and per call.
_OWN_KEYS = frozenset({"model", "messages", "stream", "stream_options"})


class OpenAiLlm:
    """The `Llm` port. `token_provider` stands in for Entra ID and `clock` for the breakers'
    time (tests)."""

    def __init__(
        self,
        settings: AiSettings,
        *,
        token_provider: TokenProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        policy = BreakerPolicy(
            failures_to_open=settings.breaker_failures,
            cooldown_s=settings.breaker_cooldown_s,
            retry_after_cap_s=settings.retry_after_cap_s,
        )
        self.chat_pool = DeploymentPool(settings.chat_deployments, policy, clock)
        self.embeddings_pool = DeploymentPool(settings.embeddings_deployments, policy, clock)
        self.clients = SdkClients(settings, token_provider=token_provider)

    def _require(self, capability: Capability) -> None:
        missing = self._settings.missing(capability)
        if missing is not None:
            raise AiNotConfigured(missing)

    @overload
    async def chat(
        self, request: Mapping[str, Any], *, stream: Literal[False] = False
    ) -> ChatResult: ...

    @overload
    async def chat(self, request: Mapping[str, Any], *, stream: Literal[True]) -> ChatStream: ...

    async def chat(
        self, request: Mapping[str, Any], *, stream: bool = False
    ) -> ChatResult | ChatStream:
        """Send an OpenAI chat completions body to the first available deployment of its
        `model` (default `AI_CHAT_MODEL`). Streamed, `stream_options.include_usage` is always
        asked for, and this returns once the first chunk has arrived."""
        self._require(Capability.CHAT)
        model = _model(request, self._settings.chat_model)
        if stream:
            return await self._stream(model, request)
        return await self._complete(model, request)

    async def _complete(self, model: str, request: Mapping[str, Any]) -> ChatResult:
        messages, extra = _split(request)

        async def complete(deployment: Deployment) -> dict[str, Any]:
            # The raw response: the body is passed on as JSON, so the SDK's typed models (half
            # of a request's CPU in the gateway) are never built. Errors are raised as before.
            raw = await self.clients.get(
                deployment.endpoint
            ).chat.completions.with_raw_response.create(
                model=deployment.name, messages=messages, extra_body=extra
            )
            try:
                body = json.loads(raw.http_response.content)
            except ValueError:
                raise UpstreamMalformed("the upstream's completion is not JSON") from None
            if not isinstance(body, dict):
                raise UpstreamMalformed("the upstream's completion is not a JSON object")
            return body

        body, lease = await self.chat_pool.acquire(model, complete, classify)
        lease.succeeded()
        usage = Usage.from_wire(body.get("usage"))
        return ChatResult(body, usage, lease.deployment.name, lease.deployment.model)

    async def _stream(self, model: str, request: Mapping[str, Any]) -> ChatStream:
        messages, extra = _split(request)
        asked = request.get("stream_options")
        options = {**(asked if isinstance(asked, Mapping) else {}), "include_usage": True}

        async def open_stream(deployment: Deployment) -> tuple[RawChunks, ChatChunk]:
            raw = await self.clients.get(
                deployment.endpoint
            ).chat.completions.with_raw_response.create(
                model=deployment.name,
                messages=messages,
                stream=True,
                stream_options=cast(Any, options),
                extra_body=extra,
            )
            upstream = RawChunks(raw.http_response)
            try:  # the first chunk decides: until it arrives, failing over is still possible
                first = await upstream.__anext__()
            except StopAsyncIteration:
                await upstream.close()
                raise UpstreamEmpty() from None
            except BaseException:
                await upstream.close()
                raise
            return upstream, ChatChunk(first)

        (upstream, first), lease = await self.chat_pool.acquire(model, open_stream, classify)
        return PooledChatStream(upstream, first, lease)

    async def embeddings(
        self, texts: Sequence[str], *, model: str | None = None, dimensions: int | None = None
    ) -> EmbeddingsResult:
        """Embed `texts` on the first available deployment of `model` (default
        `AI_EMBEDDINGS_MODEL`); one vector per text, in order."""
        self._require(Capability.EMBEDDINGS)
        inputs = [texts] if isinstance(texts, str) else list(texts)
        chosen = _model({"model": model} if model else {}, self._settings.embeddings_model)

        async def embed(deployment: Deployment) -> dict[str, Any]:
            import openai

            response = await self.clients.get(deployment.endpoint).embeddings.create(
                model=deployment.name,
                input=inputs,
                dimensions=openai.omit if dimensions is None else dimensions,
            )
            ordered = sorted(response.data, key=lambda item: item.index)
            return {
                "vectors": [list(item.embedding) for item in ordered],
                "usage": response.usage.to_dict(mode="json") if response.usage else None,
            }

        answer, lease = await self.embeddings_pool.acquire(chosen, embed, classify)
        lease.succeeded()
        deployment = lease.deployment
        usage = Usage.from_wire(answer["usage"])
        return EmbeddingsResult(answer["vectors"], usage, deployment.name, deployment.model)

    async def aclose(self) -> None:
        await self.clients.aclose()


def _split(request: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The app's messages, and the rest of its body, passed through as it is."""
    extra = {key: value for key, value in request.items() if key not in _OWN_KEYS}
    return request.get("messages"), extra


def _model(request: Mapping[str, Any], default: str | None) -> str:
    model = request.get("model") or default
    if not isinstance(model, str):
        raise InvalidRequest("a request's model must be a string")
    return model
