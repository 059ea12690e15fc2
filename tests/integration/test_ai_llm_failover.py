"""The deployment pool over the real openai SDK and loopback servers: 429s and their Retry-After
(a day-long one capped), 500s, slow and broken upstreams, content filters, and failover that
never leaves the model. Breakers run on a fake clock, so nothing here waits for a cooldown."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.ai.breaker import BreakerState
from shared.ai.errors import ContentFiltered, NoDeploymentAvailable
from shared.ai.settings import AzureApi
from tests.fakes.openai_server import (
    Completion,
    ContentFilter,
    FakeOpenAI,
    RateLimited,
    ServerError,
    open_llm,
    settings_for,
)

pytestmark = pytest.mark.integration

ASK = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Tell me a story"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_429_fails_over_to_the_same_model_and_benches_the_deployment() -> None:
    clock = Clock()
    with FakeOpenAI() as server:
        server.script("east", RateLimited(retry_after_s=7))
        pool = [server.deployment("east", "gpt-4o"), server.deployment("west", "gpt-4o")]
        async with open_llm(settings_for(pool), clock=clock) as llm:
            result = await llm.chat(ASK)
            assert result.deployment == "west" and result.model == "gpt-4o"
            assert llm.chat_pool.state("east") is BreakerState.OPEN
            await llm.chat(ASK)
            clock.now += 7.0
            assert llm.chat_pool.state("east") is BreakerState.HALF_OPEN
            probe = await llm.chat(ASK)
            assert llm.chat_pool.state("east") is BreakerState.CLOSED
    assert [r.deployment for r in server.requests] == ["east", "west", "west", "east"]
    assert probe.deployment == "east"
    assert all(r.body["model"] == r.deployment for r in server.requests)


@pytest.mark.parametrize(
    "reply",
    [RateLimited(retry_after_s=86_400), RateLimited(retry_after_s=None, retry_after_ms=86_400_000)],
)
async def test_a_day_long_retry_after_is_capped(reply: RateLimited) -> None:
    clock = Clock()
    with FakeOpenAI() as server:
        server.script("east", reply)
        pool = [server.deployment("east", "gpt-4o"), server.deployment("west", "gpt-4o")]
        settings = replace(settings_for(pool), retry_after_cap_s=30.0)
        async with open_llm(settings, clock=clock) as llm:
            assert (await llm.chat(ASK)).deployment == "west"
            clock.now += 29.0
            assert llm.chat_pool.state("east") is BreakerState.OPEN
            clock.now += 1.0  # the cap has passed, not the day
            assert (await llm.chat(ASK)).deployment == "east"


async def test_every_deployment_throttled_answers_with_the_soonest_retry() -> None:
    with FakeOpenAI() as server:
        server.script("east", RateLimited(retry_after_s=86_400))
        server.script("west", RateLimited(retry_after_s=12))
        pool = [server.deployment("east", "gpt-4o"), server.deployment("west", "gpt-4o")]
        async with open_llm(settings_for(pool), clock=Clock()) as llm:
            with pytest.raises(NoDeploymentAvailable) as raised:
                await llm.chat(ASK)
            with pytest.raises(NoDeploymentAvailable) as again:
                await llm.chat(ASK, stream=True)
    assert raised.value.status == 429 and raised.value.retry_after == "12"
    assert again.value.retry_after == "12"
    assert len(server.requests) == 2, "benched deployments are not asked again"


async def test_failover_never_goes_to_another_model() -> None:
    with FakeOpenAI() as server:
        server.script("east", RateLimited(retry_after_s=5))
        pool = [server.deployment("east", "gpt-4o"), server.deployment("mini", "gpt-4o-mini")]
        async with open_llm(settings_for(pool), clock=Clock()) as llm:
            with pytest.raises(NoDeploymentAvailable) as raised:
                await llm.chat(ASK)
            small = await llm.chat({**ASK, "model": "gpt-4o-mini"})
    assert raised.value.retry_after == "5"
    assert small.deployment == "mini"
    assert [r.deployment for r in server.requests] == ["east", "mini"]


async def test_500s_fail_over_and_open_the_breaker_after_enough_in_a_row() -> None:
    clock = Clock()
    with FakeOpenAI() as server:
        server.script("east", *[ServerError()] * 3)
        pool = [server.deployment("east", "gpt-4o"), server.deployment("west", "gpt-4o")]
        settings = replace(settings_for(pool), breaker_failures=3, breaker_cooldown_s=60.0)
        async with open_llm(settings, clock=clock) as llm:
            for _ in range(3):
                assert (await llm.chat(ASK)).deployment == "west"
            assert llm.chat_pool.state("east") is BreakerState.OPEN
            await llm.chat(ASK)
            clock.now += 60.0
            assert (await llm.chat(ASK)).deployment == "east"  # the probe succeeds
    assert [r.deployment for r in server.requests].count("east") == 4


async def test_a_content_filter_is_returned_at_once_with_its_innererror() -> None:
    with FakeOpenAI() as server:
        server.script("east", ContentFilter(category="hate", severity="high"))
        pool = [server.deployment("east", "gpt-4o"), server.deployment("west", "gpt-4o")]
        async with open_llm(settings_for(pool)) as llm:
            with pytest.raises(ContentFiltered) as raised:
                await llm.chat(ASK, stream=True)
            assert llm.chat_pool.state("east") is BreakerState.CLOSED
    filtered = raised.value
    assert filtered.status == 400 and filtered.deployment == "east"
    assert filtered.innererror is not None
    assert filtered.innererror["code"] == "ResponsibleAIPolicyViolation"
    assert filtered.innererror["content_filter_result"]["hate"] == {
        "filtered": True,
        "severity": "high",
    }
    assert filtered.body["error"]["code"] == "content_filter"
    assert [r.deployment for r in server.requests] == ["east"], "never retried, never elsewhere"


async def test_a_stream_fails_over_until_its_first_chunk_arrives() -> None:
    with FakeOpenAI() as server:
        server.script("east", Completion(drop_after=0))  # headers, then the connection drops
        server.script("west", ServerError(status=503))
        pool = [
            server.deployment("east", "gpt-4o"),
            server.deployment("west", "gpt-4o"),
            server.deployment("south", "gpt-4o"),
        ]
        async with open_llm(settings_for(pool)) as llm:
            stream = await llm.chat(ASK, stream=True)
            chunks = [chunk async for chunk in stream]
    assert stream.deployment == "south" and stream.usage is not None
    assert chunks[-1].usage_only
    assert [r.deployment for r in server.requests] == ["east", "west", "south"]


async def test_a_slow_first_byte_times_out_and_fails_over() -> None:
    with FakeOpenAI() as server:
        server.script("east", Completion(first_delay_s=1.0))
        pool = [server.deployment("east", "gpt-4o"), server.deployment("west", "gpt-4o")]
        settings = replace(settings_for(pool), timeout_s=0.2)
        async with open_llm(settings) as llm:
            result = await llm.chat(ASK)
    assert result.deployment == "west"


async def test_failover_crosses_endpoints_with_a_client_each() -> None:
    with FakeOpenAI() as east, FakeOpenAI() as west:
        east.script("gpt4o", ServerError(status=502))
        pool = [east.deployment("gpt4o", azure=True), west.deployment("gpt4o", azure=True)]
        settings = settings_for(pool, azure_api=AzureApi.DEPLOYMENTS)
        async with open_llm(settings) as llm:
            stream = await llm.chat({"messages": ASK["messages"]}, stream=True)
            async for _ in stream:
                pass
            assert set(llm.clients.endpoints) == {east.url, west.url}
    assert len(east.requests) == len(west.requests) == 1
    assert west.requests[0].path == "/openai/deployments/gpt4o/chat/completions"
