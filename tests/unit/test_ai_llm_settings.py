"""The LLM port's settings: the two backends, the pool's forms, not configured, hostile values."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ai.settings import (
    DEFAULT_API_VERSION,
    AiSettingsError,
    AzureApi,
    Backend,
    Capability,
    Deployment,
    load_ai_settings,
)

pytestmark = pytest.mark.unit

AZURE = {"AZURE_OPENAI_ENDPOINT": "https://east.openai.azure.com/", "AI_CHAT_MODEL": "gpt4o"}
LOCAL = {
    "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
    "OPENAI_API_KEY": "sk-local",
    "AI_CHAT_MODEL": "llama3.1:8b",
}


def test_nothing_set_is_not_configured_and_names_what_to_set() -> None:
    settings = load_ai_settings({})
    assert not settings.configured
    message = settings.missing(Capability.CHAT)
    assert message is not None
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL", "OPENAI_API_KEY", "AI_CHAT_MODEL"):
        assert name in message
    assert settings.missing(Capability.EMBEDDINGS) == message


def test_an_api_key_alone_never_means_openai_itself() -> None:
    settings = load_ai_settings({"OPENAI_API_KEY": "sk-x", "AI_CHAT_MODEL": "gpt-4o"})
    assert not settings.configured
    assert "OPENAI_BASE_URL" in (settings.missing(Capability.CHAT) or "")


def test_an_endpoint_without_a_model_names_the_model_setting() -> None:
    settings = load_ai_settings({"AZURE_OPENAI_ENDPOINT": "https://east.openai.azure.com"})
    assert not settings.configured
    assert "AI_CHAT_MODEL" in (settings.missing(Capability.CHAT) or "")
    assert "AI_EMBEDDINGS_MODEL" in (settings.missing(Capability.EMBEDDINGS) or "")


def test_azure_defaults_to_the_v1_api_with_one_deployment_per_model() -> None:
    settings = load_ai_settings({**AZURE, "AI_EMBEDDINGS_MODEL": "embed-3"})
    assert settings.backend is Backend.AZURE and settings.azure_api is AzureApi.V1
    assert settings.api_key is None
    assert settings.chat_deployments == (
        Deployment("gpt4o", "gpt4o", "https://east.openai.azure.com"),
    )
    assert settings.embeddings_deployments[0].name == "embed-3"
    assert settings.missing(Capability.CHAT) is None
    assert (settings.retry_after_cap_s, settings.breaker_failures) == (30.0, 3)


def test_the_deployments_api_takes_a_dated_version() -> None:
    settings = load_ai_settings({**AZURE, "AZURE_OPENAI_API": "Deployments"})
    assert settings.azure_api is AzureApi.DEPLOYMENTS
    assert settings.api_version == DEFAULT_API_VERSION
    preview = {**AZURE, "AZURE_OPENAI_API": "deployments"}
    preview["AZURE_OPENAI_API_VERSION"] = "2025-04-01-preview"
    assert load_ai_settings(preview).api_version == "2025-04-01-preview"


def test_an_openai_compatible_server_on_this_machine_may_be_plain_http() -> None:
    settings = load_ai_settings(LOCAL)
    assert settings.backend is Backend.OPENAI
    assert settings.chat_deployments[0].endpoint == "http://127.0.0.1:11434/v1"
    assert "sk-local" not in repr(settings)


def test_the_compact_pool_is_in_priority_order_on_the_main_or_its_own_endpoint() -> None:
    settings = load_ai_settings(
        {**AZURE, "AI_CHAT_DEPLOYMENTS": "gpt4o-east, gpt4o-west@https://west.openai.azure.com/"}
    )
    assert settings.chat_deployments == (
        Deployment("gpt4o-east", "gpt4o", "https://east.openai.azure.com", 0),
        Deployment("gpt4o-west", "gpt4o", "https://west.openai.azure.com", 1),
    )


def test_the_json_pool_has_models_and_priorities() -> None:
    pool = [
        {"deployment": "mini-east", "model": "gpt-4o-mini", "priority": 1},
        {"deployment": "big-west", "model": "gpt4o", "endpoint": "https://west.openai.azure.com"},
        {"deployment": "big-east", "priority": 0},
    ]
    settings = load_ai_settings({**AZURE, "AI_CHAT_DEPLOYMENTS": json.dumps(pool)})
    assert [(d.name, d.model, d.priority) for d in settings.chat_deployments] == [
        ("big-east", "gpt4o", 0),
        ("mini-east", "gpt-4o-mini", 1),
        ("big-west", "gpt4o", 1),  # its position; ties keep the listed order
    ]


POOL = "AI_CHAT_DEPLOYMENTS"
HOSTILE = [
    ({"AZURE_OPENAI_ENDPOINT": "http://east.openai.azure.com"}, "AZURE_OPENAI_ENDPOINT"),
    (
        {"AZURE_OPENAI_ENDPOINT": "https://east.openai.azure.com/openai/v1/"},
        "AZURE_OPENAI_ENDPOINT",
    ),
    ({"AZURE_OPENAI_ENDPOINT": "ftp://east.openai.azure.com"}, "AZURE_OPENAI_ENDPOINT"),
    ({"AZURE_OPENAI_ENDPOINT": "https://east.openai.azure.com/?x=1"}, "AZURE_OPENAI_ENDPOINT"),
    ({"AZURE_OPENAI_ENDPOINT": "https://east.openai.azure.com:99999"}, "AZURE_OPENAI_ENDPOINT"),
    ({"AZURE_OPENAI_ENDPOINT": "https://eäst.openai.azure.com"}, "AZURE_OPENAI_ENDPOINT"),
    ({"AZURE_OPENAI_ENDPOINT": "https://a b.com"}, "AZURE_OPENAI_ENDPOINT"),
    ({**AZURE, "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, "OPENAI_BASE_URL"),
    ({"OPENAI_BASE_URL": "http://models.example.com/v1", "OPENAI_API_KEY": "k"}, "OPENAI_BASE_URL"),
    ({"OPENAI_BASE_URL": "https://models.example.com/v1"}, "OPENAI_API_KEY"),
    (
        {"OPENAI_BASE_URL": "https://models.example.com/v1", "OPENAI_API_KEY": "a b"},
        "OPENAI_API_KEY",
    ),
    ({**AZURE, "AZURE_OPENAI_API": "v2"}, "AZURE_OPENAI_API"),
    ({**AZURE, "AZURE_OPENAI_API_VERSION": "2024-10-21"}, "AZURE_OPENAI_API_VERSION"),
    (
        {**AZURE, "AZURE_OPENAI_API": "deployments", "AZURE_OPENAI_API_VERSION": "latest"},
        "AZURE_OPENAI_API_VERSION",
    ),
    ({**AZURE, "AI_CHAT_MODEL": "../admin"}, "AI_CHAT_MODEL"),
    ({**AZURE, "AI_CHAT_MODEL": "gpt 4o"}, "AI_CHAT_MODEL"),
    ({**AZURE, "AI_EMBEDDINGS_MODEL": "x" * 65}, "AI_EMBEDDINGS_MODEL"),
    ({**LOCAL, "AI_CHAT_MODEL": "llama@evil"}, "AI_CHAT_MODEL"),
    ({**AZURE, "AI_RETRY_AFTER_CAP_S": "nan"}, "AI_RETRY_AFTER_CAP_S"),
    ({**AZURE, "AI_RETRY_AFTER_CAP_S": "inf"}, "AI_RETRY_AFTER_CAP_S"),
    ({**AZURE, "AI_RETRY_AFTER_CAP_S": "0"}, "AI_RETRY_AFTER_CAP_S"),
    ({**AZURE, "AI_RETRY_AFTER_CAP_S": "86400"}, "AI_RETRY_AFTER_CAP_S"),
    ({**AZURE, "AI_RETRY_AFTER_CAP_S": "thirty"}, "AI_RETRY_AFTER_CAP_S"),
    ({**AZURE, "AI_BREAKER_FAILURES": "2.5"}, "AI_BREAKER_FAILURES"),
    ({**AZURE, "AI_BREAKER_COOLDOWN_S": "-1"}, "AI_BREAKER_COOLDOWN_S"),
    ({**AZURE, "AI_REQUEST_TIMEOUT_S": "1e9"}, "AI_REQUEST_TIMEOUT_S"),
    ({"AZURE_OPENAI_ENDPOINT": AZURE["AZURE_OPENAI_ENDPOINT"], POOL: "a,b"}, "AI_CHAT_MODEL"),
    ({**AZURE, POOL: "[not json"}, POOL),
    ({**AZURE, POOL: '{"deployment": "gpt4o"}'}, POOL),
    ({**AZURE, POOL: '[{"deployment": "gpt4o", "region": "east"}]'}, POOL),
    ({**AZURE, POOL: '[{"deployment": "gpt4o", "priority": true}]'}, POOL),
    ({**AZURE, POOL: '[{"deployment": "gpt4o", "priority": "1"}]'}, POOL),
    ({**AZURE, POOL: '[{"deployment": "gpt4o", "priority": -1}]'}, POOL),
    ({**AZURE, POOL: '[{"deployment": 7}]'}, POOL),
    ({**AZURE, POOL: '[{"model": "gpt4o"}]'}, POOL),
    ({**AZURE, POOL: "[]"}, POOL),
    ({**AZURE, POOL: "gpt4o,,other"}, POOL),
    ({**AZURE, POOL: "gpt4o, gpt4o"}, POOL),
    ({**AZURE, POOL: "gpt4o@http://west.openai.azure.com"}, POOL),
    ({**AZURE, POOL: '[{"deployment": "mini", "model": "gpt-4o-mini"}]'}, POOL),
    ({**AZURE, POOL: ",".join(f"d{i}" for i in range(33))}, POOL),
    ({**AZURE, POOL: "gpt4o," + "x" * 20_000}, POOL),
]


@pytest.mark.parametrize(("environ", "setting"), HOSTILE)
def test_hostile_values_are_refused_naming_the_setting(
    environ: dict[str, str], setting: str
) -> None:
    with pytest.raises(AiSettingsError) as raised:
        load_ai_settings(environ)
    assert raised.value.setting == setting
    assert str(raised.value).startswith(f"setting {setting}: ")


@pytest.mark.parametrize(
    "url", ["https://user:s3cret@models.example.com/v1", "https://models.example.com/v1?key=s3cret"]
)
def test_a_credential_in_a_url_is_refused_and_never_echoed(url: str) -> None:
    with pytest.raises(AiSettingsError) as raised:
        load_ai_settings({"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "k"})
    assert "s3cret" not in str(raised.value)


NAMES = st.sampled_from(
    [
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API",
        "AZURE_OPENAI_API_VERSION",
        "AI_CHAT_MODEL",
        "AI_EMBEDDINGS_DEPLOYMENTS",
        "AI_CHAT_DEPLOYMENTS",
        "AI_RETRY_AFTER_CAP_S",
        "AI_BREAKER_FAILURES",
    ]
)


@given(st.dictionaries(NAMES, st.text(max_size=60), max_size=4), st.booleans())
def test_any_text_is_parsed_or_refused_with_a_settings_error(
    environ: dict[str, str], local: bool
) -> None:
    base = LOCAL if local else AZURE
    try:
        load_ai_settings({**base, **environ})
    except AiSettingsError:
        pass
