"""The AI gateway's parts, composed once per process by `shared.bootstrap`.

The apps' registry is on the document store and known even when no LLM is configured (keys
are issued and revoked with no upstream at all). The gateway itself is built on its first use:
settings that are set but malformed raise `AiSettingsError` there, which the AI routes answer
with 503 naming the setting; nothing else in the platform depends on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.ai.apps import APPS_CONTAINER, AppKeyResolver, AppRegistry
from shared.ai.ask import AskPolicy, AskService
from shared.ai.gateway import AiGateway
from shared.ai.knowledge.answers import AnswerService, build_answer_service
from shared.ai.ledger import USAGE_CONTAINER, UsageLedger
from shared.ai.limits import LIMITS_CONTAINER, Limiter
from shared.ai.port import Llm
from shared.ai.settings import load_ai_settings
from shared.documents.port import DocumentDatabase
from shared.identity.principal import Principal
from shared.identity.roles import Role
from shared.pipeline.lake import Lake

GATEWAY_ROLES = frozenset({Role.AI_USER.value})  # what an app's key holds


@dataclass(frozen=True)
class AiStores:
    """The gateway's documents: its apps, their counters and the usage ledger."""

    apps: AppRegistry
    limiter: Limiter
    ledger: UsageLedger


def open_ai_stores(documents: DocumentDatabase) -> AiStores:
    return AiStores(
        AppRegistry(documents.container(APPS_CONTAINER)),
        Limiter(documents.container(LIMITS_CONTAINER)),
        UsageLedger(documents.container(USAGE_CONTAINER)),
    )


def build_gateway(environ: Mapping[str, str], stores: AiStores) -> AiGateway:
    settings = load_ai_settings(environ)

    def llm() -> Llm:
        from shared.ai.llm import OpenAiLlm  # the openai SDK, on the first AI request only

        return OpenAiLlm(settings)

    return AiGateway(
        settings,
        stores.apps,
        stores.limiter,
        stores.ledger,
        llm,
        keep_alive_s=settings.keep_alive_s,
    )


def build_answers(gateway: AiGateway, environ: Mapping[str, str]) -> AnswerService:
    """The answers over the docs and catalog, on the gateway's LLM port (its chat model, and
    its embeddings when one is configured)."""
    return build_answer_service(gateway.llm, gateway.settings, environ)


def build_ask(gateway: AiGateway, lake: Lake) -> AskService:
    """Questions over gold on the gateway's LLM port; rows reach the LLM only when
    `AI_ASK_SHARE_ROWS` is true (and personal columns never do)."""
    policy = AskPolicy(share_rows=gateway.settings.ask_share_rows)
    return AskService(gateway.llm, lake, policy=policy)


class GatewayKeys:
    """The authenticator's `KeyResolver`: a gateway key is an identity of kind `app` holding
    `AI.User`. The registry is opened on the first key presented."""

    def __init__(self, registry: Callable[[], AppRegistry], tenant: str) -> None:
        self._registry = registry
        self._tenant = tenant

    def resolve(self, key: str) -> Principal | None:
        return AppKeyResolver(self._registry(), self._tenant, GATEWAY_ROLES).resolve(key)
