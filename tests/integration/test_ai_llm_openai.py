"""The LLM port with the real openai SDK against a loopback OpenAI-compatible server: what goes
on the wire (paths, auth, `include_usage`), true streaming, exact usage, embeddings, and the
ways a stream breaks."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from shared.ai.errors import StreamInterrupted, UpstreamRejected
from shared.ai.port import ChatChunk, Usage
from shared.ai.settings import DEFAULT_API_VERSION, AzureApi, load_ai_settings
from tests.fakes.openai_server import (
    API_KEY,
    TOKEN,
    Completion,
    FakeOpenAI,
    ServerError,
    fake_vector,
    open_llm,
    settings_for,
)

pytestmark = pytest.mark.integration

ASK = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]
}


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk.data["choices"]
    )


async def test_a_whole_completion_with_its_exact_usage() -> None:
    with FakeOpenAI(api_key=API_KEY) as server:
        server.script("gpt-4o", Completion(text="Hello, how can I help?"))
        async with open_llm(settings_for([server.deployment("gpt-4o")])) as llm:
            result = await llm.chat({**ASK, "temperature": 0.2, "user": "app-1"})
    assert result.body["object"] == "chat.completion"
    assert result.body["choices"][0]["message"]["content"] == "Hello, how can I help?"
    assert result.usage == Usage(prompt_tokens=4, completion_tokens=5, total_tokens=9)
    assert (result.deployment, result.model) == ("gpt-4o", "gpt-4o")
    [sent] = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.body["temperature"] == 0.2 and sent.body["user"] == "app-1"
    assert "stream" not in sent.body and "stream_options" not in sent.body


async def test_a_stream_arrives_chunk_by_chunk_with_the_usage_chunk_last() -> None:
    reply = Completion(text="one two three four", chunk_delay_s=0.15)
    with FakeOpenAI() as server:
        server.script("gpt-4o", reply)
        async with open_llm(settings_for([server.deployment("gpt-4o")])) as llm:
            started = time.monotonic()
            stream = await llm.chat(
                {**ASK, "stream_options": {"include_usage": False}}, stream=True
            )
            arrivals: list[tuple[float, ChatChunk]] = []
            async for chunk in stream:
                arrivals.append((time.monotonic() - started, chunk))
    chunks = [chunk for _, chunk in arrivals]
    assert text_of(chunks) == "one two three four"
    first_content = next(at for at, c in arrivals if text_of([c]))
    assert first_content < 0.4, "the first words came before the last were written"
    assert arrivals[-1][0] >= 0.55
    assert chunks[-1].usage_only and not any(c.usage_only for c in chunks[:-1])
    assert stream.usage == Usage(prompt_tokens=4, completion_tokens=4, total_tokens=8)
    [sent] = server.requests
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}, "always asked upstream"


async def test_the_usage_chunk_is_asked_even_when_the_app_did_not_ask() -> None:
    with FakeOpenAI() as server:
        async with open_llm(settings_for([server.deployment("gpt-4o")])) as llm:
            stream = await llm.chat(ASK, stream=True)
            chunks = [chunk async for chunk in stream]
    assert server.requests[0].body["stream_options"] == {"include_usage": True}
    assert chunks[-1].usage == stream.usage and stream.usage is not None
    assert stream.usage.total_tokens == 4 + 5


async def test_azure_v1_sends_the_entra_token_to_openai_v1() -> None:
    with FakeOpenAI(token=TOKEN) as server:
        settings = settings_for(
            [server.deployment("gpt4o-east", azure=True)], azure_api=AzureApi.V1
        )
        async with open_llm(settings) as llm:
            stream = await llm.chat(ASK, stream=True)
            chunks = [chunk async for chunk in stream]
    [sent] = server.requests
    assert sent.path == "/openai/v1/chat/completions" and sent.query == {}
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.body["model"] == "gpt4o-east"
    assert "prompt_filter_results" in chunks[0].data and not chunks[0].usage_only
    assert text_of(chunks) == "Hello from the loopback model"


async def test_azure_deployments_api_puts_the_deployment_in_the_path_with_its_version() -> None:
    with FakeOpenAI(token=TOKEN) as server:
        chat = [server.deployment("gpt4o-east", azure=True)]
        embeddings = [server.deployment("embed-east", azure=True)]
        settings = settings_for(chat, embeddings, azure_api=AzureApi.DEPLOYMENTS)
        async with open_llm(settings) as llm:
            result = await llm.chat(ASK)
            vectors = await llm.embeddings(["alpha beta"])
    chat_sent, embed_sent = server.requests
    assert chat_sent.path == "/openai/deployments/gpt4o-east/chat/completions"
    assert embed_sent.path == "/openai/deployments/embed-east/embeddings"
    assert chat_sent.query == {"api-version": DEFAULT_API_VERSION}
    assert chat_sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in chat_sent.headers
    assert result.usage is not None and vectors.vectors == [fake_vector("alpha beta")]


async def test_embeddings_in_input_order_with_exact_usage() -> None:
    texts = ["the first text", "second", "and the third one"]
    with FakeOpenAI() as server:
        deployment = server.deployment("text-embedding-3-small")
        async with open_llm(settings_for(embeddings=[deployment])) as llm:
            result = await llm.embeddings(texts, dimensions=16)
            single = await llm.embeddings("lonely")
    assert result.vectors == [fake_vector(text, 16) for text in texts]
    assert result.usage is not None and result.usage.prompt_tokens == 8
    assert single.vectors == [fake_vector("lonely")]
    assert server.requests[0].body["dimensions"] == 16
    assert server.requests[0].path == "/v1/embeddings"


async def test_settings_from_the_environment_reach_a_local_server() -> None:
    with FakeOpenAI(api_key="sk-local") as server:
        settings = load_ai_settings(
            {
                "OPENAI_BASE_URL": server.base_url,
                "OPENAI_API_KEY": "sk-local",
                "AI_CHAT_MODEL": "llama3.1:8b",
            }
        )
        async with open_llm(settings) as llm:
            result = await llm.chat(ASK)
    assert result.deployment == "llama3.1:8b"
    assert server.requests[0].headers["authorization"] == "Bearer sk-local"


async def test_a_connection_dropped_mid_stream_raises_after_the_chunks_delivered() -> None:
    with FakeOpenAI() as server:
        server.script("gpt-4o", Completion(text="one two three four", drop_after=3))
        async with open_llm(settings_for([server.deployment("gpt-4o")])) as llm:
            stream = await llm.chat(ASK, stream=True)
            received: list[ChatChunk] = []
            with pytest.raises(StreamInterrupted) as raised:
                async for chunk in stream:
                    received.append(chunk)
    assert text_of(received) == "one two"  # the role chunk, then two words
    assert raised.value.chunks == 3 and "connection" in raised.value.reason
    assert len(server.requests) == 1, "a stream is never retried once it has begun"


async def test_an_error_event_mid_stream_raises_after_the_chunks_delivered() -> None:
    with FakeOpenAI() as server:
        server.script("gpt-4o", Completion(text="one two three", error_after=2))
        async with open_llm(settings_for([server.deployment("gpt-4o")])) as llm:
            stream = await llm.chat(ASK, stream=True)
            received: list[ChatChunk] = []
            with pytest.raises(StreamInterrupted, match="crashed mid-stream"):
                async for chunk in stream:
                    received.append(chunk)
    assert text_of(received) == "one"


async def test_a_stream_that_stalls_past_the_timeout_is_interrupted() -> None:
    with FakeOpenAI() as server:
        server.script("gpt-4o", Completion(text="one two", chunk_delay_s=0.6))
        settings = replace(settings_for([server.deployment("gpt-4o")]), timeout_s=0.2)
        async with open_llm(settings) as llm:
            stream = await llm.chat(ASK, stream=True)
            with pytest.raises(StreamInterrupted, match="timed out"):
                async for _ in stream:
                    pass


async def test_closing_a_stream_early_releases_it() -> None:
    with FakeOpenAI() as server:
        server.script("gpt-4o", Completion(text="one two three four", chunk_delay_s=0.05))
        async with open_llm(settings_for([server.deployment("gpt-4o")])) as llm:
            stream = await llm.chat(ASK, stream=True)
            await stream.__anext__()
            await stream.aclose()
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
            after = await llm.chat(ASK)  # the pool and the client still serve
    assert after.usage is not None


async def test_the_sdk_never_retries_and_a_refused_request_is_not_failed_over() -> None:
    with FakeOpenAI() as server:
        server.script("east", ServerError(status=422, message="messages must not be empty"))
        pool = [server.deployment("east", "gpt-4o"), server.deployment("west", "gpt-4o")]
        async with open_llm(settings_for(pool)) as llm:
            with pytest.raises(UpstreamRejected) as raised:
                await llm.chat(ASK)
    assert raised.value.status == 422 and "must not be empty" in str(raised.value)
    assert [r.deployment for r in server.requests] == ["east"]
    assert server.requests[0].headers["x-stainless-retry-count"] == "0"


async def test_the_platforms_own_bad_credentials_are_a_bad_gateway_not_a_401() -> None:
    with FakeOpenAI(api_key="sk-the-right-one") as server:
        async with open_llm(settings_for([server.deployment("gpt-4o")])) as llm:
            with pytest.raises(UpstreamRejected) as raised:
                await llm.chat(ASK)
    assert (raised.value.status, raised.value.upstream_status) == (502, 401)


async def test_one_client_per_endpoint_built_on_first_use() -> None:
    with FakeOpenAI() as server:
        chat = [server.deployment("gpt-4o")]
        embeddings = [server.deployment("embed")]
        async with open_llm(settings_for(chat, embeddings)) as llm:
            assert llm.clients.endpoints == ()
            await llm.chat(ASK)
            await llm.embeddings(["x"])
            await llm.chat(ASK)
            assert llm.clients.endpoints == (server.base_url,)
