"""The openai SDK clients: one per endpoint, built on first use and reused for the process.

Azure OpenAI is reached with Entra ID (`DefaultAzureCredential`, one per process, imported only
when Azure is configured), on the v1 API (`AsyncOpenAI` on `{endpoint}/openai/v1/`, the token
as its key) or the deployments API (`AsyncAzureOpenAI`, with `api-version`). Any other
OpenAI-compatible server gets `AsyncOpenAI` with its base URL and key. The SDK's own retries are
off (`max_retries=0`): the pool is the only retry logic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from shared.ai.settings import ENTRA_SCOPE, AiSettings, AzureApi, Backend

if TYPE_CHECKING:
    from openai import AsyncOpenAI

TokenProvider = Callable[[], Awaitable[str]]


class SdkClients:
    """The clients of one `OpenAiLlm`; `token_provider` replaces Entra ID (tests)."""

    def __init__(
        self, settings: AiSettings, *, token_provider: TokenProvider | None = None
    ) -> None:
        self._settings = settings
        self._token_provider = token_provider
        self._credential: Any = None  # azure.identity.aio.DefaultAzureCredential, when built
        self._clients: dict[str, AsyncOpenAI] = {}

    def get(self, endpoint: str) -> AsyncOpenAI:
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = self._build(endpoint)
        return client

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The endpoints that have a client so far."""
        return tuple(self._clients)

    def _build(self, endpoint: str) -> AsyncOpenAI:
        import openai

        settings = self._settings
        timeout = openai.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        # The SDK's aiohttp transport (its `aiohttp` extra, vendored): a request costs a
        # fraction of the CPU of its default httpx transport over anyio.
        http = openai.DefaultAioHttpClient(timeout=timeout)
        if settings.backend is Backend.OPENAI:
            return openai.AsyncOpenAI(
                base_url=endpoint,
                api_key=settings.api_key,
                max_retries=0,
                timeout=timeout,
                http_client=http,
            )
        if settings.backend is not Backend.AZURE:
            raise RuntimeError("no AI backend is configured")
        if settings.azure_api is AzureApi.V1:
            return openai.AsyncOpenAI(
                base_url=f"{endpoint}/openai/v1/",
                api_key=self._entra(),
                max_retries=0,
                timeout=timeout,
                http_client=http,
            )
        return openai.AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_version=settings.api_version,
            azure_ad_token_provider=self._entra(),
            max_retries=0,
            timeout=timeout,
            http_client=http,
        )

    def _entra(self) -> TokenProvider:
        if self._token_provider is None:
            from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

            self._credential = DefaultAzureCredential()
            self._token_provider = get_bearer_token_provider(self._credential, ENTRA_SCOPE)
        return self._token_provider

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
        credential, self._credential = self._credential, None
        if credential is not None:
            await credential.close()
