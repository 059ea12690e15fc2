"""The port without an upstream: not configured is a clear 503, importing it stays cheap, and
the chunk and usage shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from shared.ai.errors import AiNotConfigured, NoDeploymentAvailable
from shared.ai.llm import OpenAiLlm
from shared.ai.port import ChatChunk, Usage
from shared.ai.settings import load_ai_settings
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit


async def test_with_nothing_configured_every_call_names_the_settings_to_set() -> None:
    llm = OpenAiLlm(load_ai_settings({}))
    with pytest.raises(AiNotConfigured) as chat:
        await llm.chat({"messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(AiNotConfigured) as embeddings:
        await llm.embeddings(["hi"])
    assert chat.value.status == embeddings.value.status == 503
    assert "AZURE_OPENAI_ENDPOINT" in str(chat.value) and "OPENAI_BASE_URL" in str(chat.value)
    assert llm.clients.endpoints == ()
    await llm.aclose()


async def test_chat_alone_leaves_embeddings_unconfigured() -> None:
    llm = OpenAiLlm(
        load_ai_settings(
            {"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com", "AI_CHAT_MODEL": "gpt4o"}
        )
    )
    with pytest.raises(AiNotConfigured, match="AI_EMBEDDINGS_MODEL"):
        await llm.embeddings(["hi"])


IMPORTS = """
import json, sys
import shared.ai.llm
from shared.ai.llm import OpenAiLlm
from shared.ai.settings import load_ai_settings
OpenAiLlm(load_ai_settings({"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
                            "AI_CHAT_MODEL": "gpt4o"}))
print(json.dumps([name in sys.modules for name in ("openai", "azure.identity")]))
"""


def test_importing_and_building_the_port_loads_neither_openai_nor_azure_identity() -> None:
    environ = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == [False, False]


def test_the_usage_chunk_is_told_from_azures_prompt_filter_chunk() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    final = ChatChunk({"object": "chat.completion.chunk", "choices": [], "usage": usage})
    azure_first = ChatChunk({"choices": [], "prompt_filter_results": [{"prompt_index": 0}]})
    content = ChatChunk({"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": None})
    assert final.usage_only and final.usage == Usage(3, 4, 7)
    assert not azure_first.usage_only and not content.usage_only


def test_malformed_usage_is_none_and_a_missing_total_is_summed() -> None:
    assert Usage.from_wire({"prompt_tokens": "3", "completion_tokens": 1}) is None
    assert Usage.from_wire({"prompt_tokens": True, "completion_tokens": 1}) is None
    assert Usage.from_wire({"prompt_tokens": 3}) == Usage(3, 0, 3)  # embeddings


def test_the_retry_after_header_is_whole_seconds_and_at_least_one() -> None:
    assert NoDeploymentAvailable("m", 0.2, ()).retry_after == "1"
    assert NoDeploymentAvailable("m", 29.1, ()).retry_after == "30"
