"""Prompt token counts: OpenAI's documented counts, the parts that are not text, bounded input,
and tiktoken kept out of the cold start."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ai.tokens import (
    IMAGE_TOKENS,
    MAX_MESSAGES,
    MAX_PROMPT_CHARACTERS,
    InvalidPrompt,
    count_chat_tokens,
    count_text,
    counts_exactly,
)
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit

# The example of OpenAI's cookbook ("How to count tokens with tiktoken"): the API reports 129
# prompt tokens for it on gpt-3.5-turbo and gpt-4 (cl100k_base).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


def test_counts_match_openais_documented_counts() -> None:
    assert count_chat_tokens(COOKBOOK_MESSAGES) == 129
    assert count_text("tiktoken is great!") == 6  # the cookbook's cl100k example
    # 3 per message, "user" and "Hello" one token each, 3 priming the reply
    assert count_chat_tokens([{"role": "user", "content": "Hello"}]) == 8
    assert count_chat_tokens([]) == 3


def test_a_name_costs_one_token_more_than_its_text() -> None:
    plain = count_chat_tokens([{"role": "user", "content": "Hi there"}])
    named = count_chat_tokens([{"role": "user", "name": "bob", "content": "Hi there"}])
    assert named == plain + count_text("bob") + 1


def test_content_parts_tool_calls_and_tools_are_counted() -> None:
    text = [{"role": "user", "content": "Describe this picture"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "Describe this picture"}]}]
    assert count_chat_tokens(parts) == count_chat_tokens(text)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with_image = [{"role": "user", "content": [parts[0]["content"][0], image]}]  # type: ignore[index]
    assert count_chat_tokens(with_image) == count_chat_tokens(text) + IMAGE_TOKENS
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    assert count_chat_tokens([*text, call]) > count_chat_tokens(text) + 10
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    assert count_chat_tokens(text, tools) > count_chat_tokens(text)


def test_special_tokens_in_text_count_as_text() -> None:
    assert count_text("<|endoftext|>") > 1
    assert count_chat_tokens([{"role": "user", "content": "a <|endofprompt|> b \ud800"}]) > 8


@pytest.mark.parametrize(
    "messages",
    [
        "hello",
        b"hello",
        None,
        {"role": "user"},
        [["user", "hello"]],
        [{"role": "user", "content": {1, 2}}],
    ],
)
def test_what_is_not_messages_is_refused(messages: Any) -> None:
    with pytest.raises(InvalidPrompt):
        count_chat_tokens(messages)


def test_input_is_bounded() -> None:
    started = time.perf_counter()
    huge = "a" * (MAX_PROMPT_CHARACTERS // 2 + 1)
    with pytest.raises(InvalidPrompt, match="characters"):
        count_chat_tokens([{"role": "user", "content": huge}, {"role": "user", "content": huge}])
    with pytest.raises(InvalidPrompt, match="characters"):
        count_text("b" * (MAX_PROMPT_CHARACTERS + 1))
    with pytest.raises(InvalidPrompt, match="messages"):
        count_chat_tokens([{"role": "user"}] * (MAX_MESSAGES + 1))
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidPrompt):
        count_chat_tokens([{"role": "user", "content": {"x": deep}}])
    assert time.perf_counter() - started < 5


def test_a_long_prompt_is_counted_fast() -> None:
    count_text("warm up")
    prompt = "The quick brown fox jumps over the lazy dog. " * 10_000  # 450,000 characters
    started = time.perf_counter()
    assert count_chat_tokens([{"role": "user", "content": prompt}]) > 90_000
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("model", "exact"),
    [
        ("gpt-4", True),
        ("gpt-4-0613", True),
        ("gpt-4-turbo", True),
        ("gpt-35-turbo", True),
        ("gpt-3.5-turbo-0125", True),
        ("gpt-4o", False),
        ("gpt-4o-mini-2024-07-18", False),
        ("gpt-4.1", False),
        ("o3-mini", False),
        ("gpt-5", False),
        ("llama3.1:8b", False),
    ],
)
def test_which_models_are_counted_exactly(model: str, exact: bool) -> None:
    assert counts_exactly(model) is exact


def test_tiktoken_is_not_imported_with_the_gateway_core() -> None:
    code = (
        "import sys, shared.ai.tokens, shared.ai.apps, shared.ai.limits, shared.ai.ledger; "
        "print('tiktoken' in sys.modules)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "False"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=8), _JSON, max_size=4), max_size=5))
def test_any_json_messages_are_counted_or_refused(messages: list[dict[str, Any]]) -> None:
    try:
        tokens = count_chat_tokens(messages)
    except InvalidPrompt:
        return
    assert tokens >= 3 + 3 * len(messages)
