"""The LLM port's settings: which endpoint, which deployments, and the pool's retry policy.

Two backends, chosen by the settings alone:

- Azure OpenAI, when `AZURE_OPENAI_ENDPOINT` is set (https only; Entra ID, never a key), on the
  v1 API (`/openai/v1/`, the default) or the dated deployments API (`AZURE_OPENAI_API=deployments`,
  with `AZURE_OPENAI_API_VERSION`).
- Any OpenAI-compatible server, when `OPENAI_BASE_URL` and `OPENAI_API_KEY` are set (the SDK's
  own variables; plain http only to a loopback host, so a key never crosses a network in clear).

`AI_CHAT_MODEL` and `AI_EMBEDDINGS_MODEL` name the deployment (Azure) or model to use. A pool of
several deployments is `AI_CHAT_DEPLOYMENTS` (and `AI_EMBEDDINGS_DEPLOYMENTS`), in one of two forms:

- compact, in priority order: `gpt4o-east, gpt4o-west@https://west.openai.azure.com`; an entry is
  `name` (on the main endpoint) or `name@endpoint`, and serves the `AI_CHAT_MODEL` model;
- JSON, a list of objects: `[{"deployment": "gpt4o-east", "model": "gpt-4o", "endpoint":
  "https://east.openai.azure.com", "priority": 0}]`; only `deployment` is required, `model`
  defaults to `AI_CHAT_MODEL`, `endpoint` to the main one, `priority` (lower first) to the
  entry's position.

Failover only goes to a deployment of the same model. Nothing set is not an error: the AI routes
then answer 503 with `AiSettings.missing(...)`, which names what to set. A value that is set but
malformed raises `AiSettingsError`, naming the setting.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.ai.setting_checks import (
    AZURE_NAME,
    MODEL_NAME,
    AiSettingsError,
    azure_endpoint,
    base_url,
    valid_name,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "ENTRA_SCOPE",
    "AiSettings",
    "AiSettingsError",
    "AzureApi",
    "Backend",
    "Capability",
    "Deployment",
    "load_ai_settings",
]

# The latest GA version of the dated (deployments) data-plane API; the v1 API needs none.
DEFAULT_API_VERSION = "2024-10-21"
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
MAX_DEPLOYMENTS = 32
_MAX_POOL_SETTING = 16_384


class Backend(StrEnum):
    AZURE = "azure"
    OPENAI = "openai"  # any OpenAI-compatible server


class AzureApi(StrEnum):
    V1 = "v1"  # {endpoint}/openai/v1/..., no api-version
    DEPLOYMENTS = "deployments"  # {endpoint}/openai/deployments/{name}/...?api-version=


class Capability(StrEnum):
    CHAT = "chat"
    EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class Deployment:
    """One place a model is served: `name` goes upstream as the request's `model` (the Azure
    deployment, or the server's model name); `model` is what it serves, the unit of failover."""

    name: str
    model: str
    endpoint: str
    priority: int = 0


@dataclass(frozen=True)
class AiSettings:
    """Everything the LLM port reads from its environment (see the module's docstring)."""

    backend: Backend | None = None
    azure_api: AzureApi = AzureApi.V1
    api_version: str = DEFAULT_API_VERSION
    api_key: str | None = field(default=None, repr=False)  # OpenAI-compatible servers only
    chat_model: str | None = None
    embeddings_model: str | None = None
    chat_deployments: tuple[Deployment, ...] = ()  # in priority order
    embeddings_deployments: tuple[Deployment, ...] = ()
    retry_after_cap_s: float = 30.0  # AI_RETRY_AFTER_CAP_S: the longest a 429 benches one
    breaker_failures: int = 3  # AI_BREAKER_FAILURES: consecutive failures that open a breaker
    breaker_cooldown_s: float = 30.0  # AI_BREAKER_COOLDOWN_S: how long it then stays open
    timeout_s: float = 120.0  # AI_REQUEST_TIMEOUT_S: a response, or the gap between chunks
    connect_timeout_s: float = 10.0
    keep_alive_s: float = 15.0  # AI_STREAM_KEEPALIVE_S: a comment line on a stream this quiet
    ask_share_rows: bool = False  # AI_ASK_SHARE_ROWS: /api/ask's summary may see result rows
    unconfigured: str = ""  # why nothing is configured, naming the settings to set

    @property
    def configured(self) -> bool:
        """True when at least one capability (chat or embeddings) can be served."""
        return bool(self.chat_deployments or self.embeddings_deployments)

    def deployments(self, capability: Capability) -> tuple[Deployment, ...]:
        if capability is Capability.CHAT:
            return self.chat_deployments
        return self.embeddings_deployments

    def missing(self, capability: Capability) -> str | None:
        """Why `capability` cannot be served, naming the settings to set; None when it can."""
        if self.deployments(capability):
            return None
        if self.backend is None:
            return self.unconfigured or _NOTHING_SET
        name = "AI_CHAT_MODEL" if capability is Capability.CHAT else "AI_EMBEDDINGS_MODEL"
        return (
            f"{capability.value} is not configured: set {name} to the deployment (Azure OpenAI) "
            "or model (an OpenAI-compatible server) to use"
        )


_NOTHING_SET = (
    "the AI routes are not configured: set AZURE_OPENAI_ENDPOINT (Azure OpenAI, with Entra ID) "
    "or OPENAI_BASE_URL and OPENAI_API_KEY (an OpenAI-compatible server), then AI_CHAT_MODEL "
    "and AI_EMBEDDINGS_MODEL"
)


def load_ai_settings(environ: Mapping[str, str] | None = None) -> AiSettings:
    """Build the AI settings from the environment; raises AiSettingsError naming a bad setting."""
    source = os.environ if environ is None else environ
    backend, endpoint, unconfigured = _backend(source)
    azure_api = AzureApi(_choice(source, "AZURE_OPENAI_API", "v1", ("v1", "deployments")))
    api_version = _api_version(source, azure_api)
    api_key = _api_key(source) if backend is Backend.OPENAI else None
    names = AZURE_NAME if backend is Backend.AZURE else MODEL_NAME
    chat_model = _name(source, "AI_CHAT_MODEL", names)
    embeddings_model = _name(source, "AI_EMBEDDINGS_MODEL", names)
    cap = _number(source, "AI_RETRY_AFTER_CAP_S", 30.0, 1, 3600)
    chat = _pool(source, "AI_CHAT_DEPLOYMENTS", "AI_CHAT_MODEL", chat_model, backend, endpoint)
    embeddings = _pool(
        source,
        "AI_EMBEDDINGS_DEPLOYMENTS",
        "AI_EMBEDDINGS_MODEL",
        embeddings_model,
        backend,
        endpoint,
    )
    return AiSettings(
        backend=backend,
        azure_api=azure_api,
        api_version=api_version,
        api_key=api_key,
        chat_model=chat_model,
        embeddings_model=embeddings_model,
        chat_deployments=chat if backend else (),
        embeddings_deployments=embeddings if backend else (),
        retry_after_cap_s=cap,
        breaker_failures=int(_number(source, "AI_BREAKER_FAILURES", 3, 1, 100, whole=True)),
        breaker_cooldown_s=_number(source, "AI_BREAKER_COOLDOWN_S", 30.0, 1, 3600),
        timeout_s=_number(source, "AI_REQUEST_TIMEOUT_S", 120.0, 1, 3600),
        keep_alive_s=_number(source, "AI_STREAM_KEEPALIVE_S", 15.0, 0.05, 300),
        ask_share_rows=_choice(source, "AI_ASK_SHARE_ROWS", "false", ("true", "false")) == "true",
        unconfigured=unconfigured,
    )


def _value(source: Mapping[str, str], name: str) -> str:
    return (source.get(name) or "").strip()


def _backend(source: Mapping[str, str]) -> tuple[Backend | None, str, str]:
    """The backend, its main endpoint, and (when there is none) what to set."""
    azure = _value(source, "AZURE_OPENAI_ENDPOINT")
    compatible = _value(source, "OPENAI_BASE_URL")
    if azure and compatible:
        raise AiSettingsError(
            "OPENAI_BASE_URL",
            "must not be set with AZURE_OPENAI_ENDPOINT: set one backend, Azure OpenAI or an "
            "OpenAI-compatible server",
        )
    if azure:
        return Backend.AZURE, azure_endpoint("AZURE_OPENAI_ENDPOINT", azure), ""
    if compatible:
        return Backend.OPENAI, base_url("OPENAI_BASE_URL", compatible), ""
    if _value(source, "OPENAI_API_KEY"):
        # A key alone would mean api.openai.com; that is never chosen implicitly.
        return (
            None,
            "",
            "the AI routes are not configured: OPENAI_API_KEY is set but OPENAI_BASE_URL is not "
            "(set it to the server's URL, https://api.openai.com/v1 for OpenAI itself), or set "
            "AZURE_OPENAI_ENDPOINT for Azure OpenAI",
        )
    return None, "", _NOTHING_SET


def _choice(source: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _value(source, name).lower() or default
    if value not in choices:
        raise AiSettingsError(name, f"must be one of {', '.join(choices)}, not {value[:40]!r}")
    return value


def _api_version(source: Mapping[str, str], api: AzureApi) -> str:
    value = _value(source, "AZURE_OPENAI_API_VERSION")
    if not value:
        return DEFAULT_API_VERSION
    if api is AzureApi.V1:
        raise AiSettingsError(
            "AZURE_OPENAI_API_VERSION",
            "applies to AZURE_OPENAI_API=deployments only; the v1 API takes no api-version",
        )
    if not re.fullmatch(r"20[0-9]{2}-[01][0-9]-[0-3][0-9](-preview)?", value):
        raise AiSettingsError(
            "AZURE_OPENAI_API_VERSION",
            f"must be a dated version such as {DEFAULT_API_VERSION}, not {value[:40]!r}",
        )
    return value


def _api_key(source: Mapping[str, str]) -> str:
    value = _value(source, "OPENAI_API_KEY")
    if not value:
        raise AiSettingsError(
            "OPENAI_API_KEY",
            "is required with OPENAI_BASE_URL (a local server that checks none takes any value)",
        )
    if len(value) > 4096 or not re.fullmatch(r"[!-~]+", value):
        raise AiSettingsError("OPENAI_API_KEY", "must be printable ASCII with no spaces")
    return value


def _name(source: Mapping[str, str], name: str, rule: tuple[str, str]) -> str | None:
    value = _value(source, name)
    return valid_name(name, value, rule) if value else None


def _number(
    source: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    whole: bool = False,
) -> float:
    raw = _value(source, name)
    if not raw:
        return default
    expected = "a whole number" if whole else "a number of seconds"
    try:
        value = float(int(raw)) if whole else float(raw)
    except ValueError:
        raise AiSettingsError(name, f"must be {expected}, not {raw[:40]!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise AiSettingsError(
            name, f"must be {expected} from {low:g} to {high:g}, not {raw[:40]!r}"
        )
    return value


def _pool(
    source: Mapping[str, str],
    name: str,
    model_setting: str,
    default_model: str | None,
    backend: Backend | None,
    endpoint: str,
) -> tuple[Deployment, ...]:
    """The deployments of one capability, in priority order (one, `default_model`, without a
    pool setting); empty when the capability's model is not set."""
    raw = _value(source, name)
    if not raw:
        if default_model is None:
            return ()
        return (Deployment(default_model, default_model, endpoint),)
    if default_model is None:
        raise AiSettingsError(
            model_setting, f"is required with {name}: the model a request gets when it names none"
        )
    if len(raw) > _MAX_POOL_SETTING:
        raise AiSettingsError(name, f"must be at most {_MAX_POOL_SETTING} characters")
    entries = _json_entries(name, raw) if raw.startswith("[") else _compact_entries(name, raw)
    if not 1 <= len(entries) <= MAX_DEPLOYMENTS:
        raise AiSettingsError(name, f"must list 1 to {MAX_DEPLOYMENTS} deployments")
    names = AZURE_NAME if backend is Backend.AZURE else MODEL_NAME
    deployments: list[Deployment] = []
    for position, entry in enumerate(entries):
        where = entry.get("endpoint")
        deployments.append(
            Deployment(
                name=valid_name(name, _text(name, entry, "deployment", required=True), names),
                model=valid_name(name, _text(name, entry, "model") or default_model, MODEL_NAME),
                endpoint=_pool_endpoint(name, where, backend) if where is not None else endpoint,
                priority=_priority(name, entry.get("priority", position)),
            )
        )
    seen = [(d.name, d.endpoint) for d in deployments]
    if len(set(seen)) != len(seen):
        raise AiSettingsError(name, "lists the same deployment on the same endpoint twice")
    if not any(d.model == default_model for d in deployments):
        raise AiSettingsError(
            name, f"must hold a deployment of {model_setting} ({default_model!r})"
        )
    return tuple(sorted(deployments, key=lambda d: d.priority))  # stable: ties keep list order


def _compact_entries(name: str, raw: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for item in raw.split(","):
        deployment, at, endpoint = item.strip().partition("@")
        if not deployment:
            raise AiSettingsError(name, "has an empty entry: use name or name@endpoint, by commas")
        entries.append({"deployment": deployment, **({"endpoint": endpoint} if at else {})})
    return entries


_JSON_KEYS = frozenset({"deployment", "model", "endpoint", "priority"})


def _json_entries(name: str, raw: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise AiSettingsError(name, "is not valid JSON (a list of deployment objects)") from None
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise AiSettingsError(name, "must be a JSON list of objects")
    for entry in value:
        unknown = sorted(set(entry) - _JSON_KEYS)
        if unknown:
            raise AiSettingsError(
                name,
                f"has unknown keys {', '.join(k[:40] for k in unknown)}; an entry holds "
                "deployment, model, endpoint and priority",
            )
    return value


def _text(name: str, entry: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise AiSettingsError(name, f"needs {key} as a non-empty string in every entry")
    return value.strip()


def _pool_endpoint(name: str, value: Any, backend: Backend | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AiSettingsError(name, "needs endpoint as a non-empty string where given")
    if backend is Backend.AZURE:
        return azure_endpoint(name, value.strip())
    return base_url(name, value.strip())


def _priority(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise AiSettingsError(
            name, f"needs priority as a whole number from 0 to 1000, not {value!r:.40}"
        )
    return value
