"""The answer service on the real LLM port (against the loopback OpenAI server): numbered
sources in the prompt, citations mapped back to passages, invented ones dropped, the question
validated, and the choice of retriever from settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ai.errors import AiNotConfigured
from shared.ai.knowledge.answers import (
    INSTRUCTIONS,
    MAX_QUESTION_CHARS,
    NOTHING_FOUND,
    AnswerService,
    EmptyAnswer,
    InvalidQuestion,
    build_answer_service,
    cited,
    question_text,
    strip_markup,
)
from shared.ai.knowledge.azure_search import AzureSearchRetriever
from shared.ai.knowledge.corpus import CorpusSources, PassageKind
from shared.ai.knowledge.hybrid import EmbeddedRetriever
from shared.ai.knowledge.retrieval import RetrievalMode
from shared.ai.llm import OpenAiLlm
from shared.ai.port import Usage
from shared.ai.setting_checks import AiSettingsError
from shared.ai.settings import Deployment
from tests.devhost_process import PROJECT_ROOT
from tests.fakes.openai_server import Completion, FakeOpenAI, open_llm, settings_for

pytestmark = pytest.mark.unit

HANDBOOK = """# Handbook

## Ingestion

Events arrive on the hub and land in bronze tables.

## Gold tables

Gold tables aggregate silver rows per merchant and day.
"""
QUESTION = "Which tables aggregate rows per merchant?"


@pytest.fixture
def sources(tmp_path: Path) -> CorpusSources:
    (tmp_path / "README.md").write_text(HANDBOOK, encoding="utf-8")
    (tmp_path / "gold").mkdir()
    return CorpusSources(
        root=tmp_path, docs=("README.md",), gold_dir=tmp_path / "gold", contracts=()
    )


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as running:
        yield running


async def test_an_answer_cites_the_sources_it_was_given_and_drops_invented_numbers(
    sources: CorpusSources, server: FakeOpenAI
) -> None:
    reply = (
        "Gold tables aggregate rows per merchant [1]. Bronze holds the events [2][9]. "
        "![chart](https://evil.example/c.png)See [the docs](https://evil.example/d) [7]."
    )
    server.script("gpt", Completion(reply))
    async with open_llm(settings_for(chat=[server.deployment("gpt")])) as llm:
        service = AnswerService(llm, EmbeddedRetriever(), sources)
        answer = await service.answer(f"  {QUESTION}\n")
    assert answer.text == (
        "Gold tables aggregate rows per merchant [1]. Bronze holds the events [2]. See the docs."
    )
    assert [(c.number, c.id, c.kind) for c in answer.citations] == [
        (1, "README.md#gold-tables", PassageKind.DOC),
        (2, "README.md#ingestion", PassageKind.DOC),
    ]
    assert answer.citations[0].title == "Gold tables"
    assert answer.citations[0].anchor == "README.md#gold-tables"
    assert answer.retrieval is RetrievalMode.BM25 and answer.sources == 2
    (sent,) = server.received("gpt", "chat")
    system, user = sent.body["messages"]
    assert system == {"role": "system", "content": INSTRUCTIONS}
    assert user["content"].startswith(
        "Sources:\n\n[1] Gold tables (doc, README.md#gold-tables)\n"
        "Gold tables aggregate silver rows per merchant and day.\n\n"
        "[2] Ingestion (doc, README.md#ingestion)\n"
    )
    assert user["content"].endswith(f"Question: {QUESTION}")
    assert isinstance(answer.usage, Usage) and answer.usage.completion_tokens == len(reply.split())
    assert set(answer.timings_ms) == {"refresh", "retrieval", "generation", "total"}
    body = answer.to_json()
    assert body["citations"][0] == {
        "number": 1,
        "id": "README.md#gold-tables",
        "title": "Gold tables",
        "kind": "doc",
        "anchor": "README.md#gold-tables",
    }
    assert body["retrieval"] == "bm25" and body["usage"]["embedding_tokens"] == 0
    json.dumps(body)


async def test_hybrid_retrieval_embeds_the_question_when_embeddings_are_configured(
    sources: CorpusSources, server: FakeOpenAI
) -> None:
    settings = settings_for(chat=[server.deployment("gpt")], embeddings=[server.deployment("e")])
    async with open_llm(settings) as llm:
        service = build_answer_service(llm, settings, {}, sources=sources)
        answer = await service.answer(QUESTION)
        await service.aclose()
    assert answer.retrieval is RetrievalMode.HYBRID and answer.embedding_tokens > 0
    inputs = [text for r in server.received("e", "embeddings") for text in r.body["input"]]
    assert inputs[-1] == QUESTION and len(inputs) == 3  # two passages, then the question


async def test_with_nothing_found_the_model_is_not_asked(
    sources: CorpusSources, server: FakeOpenAI
) -> None:
    async with open_llm(settings_for(chat=[server.deployment("gpt")])) as llm:
        answer = await AnswerService(llm, EmbeddedRetriever(), sources).answer("zyzzyva?")
    assert answer.text == NOTHING_FOUND and answer.citations == () and answer.usage is None
    assert server.received(kind="chat") == []


async def test_a_changed_doc_is_answered_from_after_the_rebuild(
    sources: CorpusSources, server: FakeOpenAI
) -> None:
    server.script("gpt", Completion("Lineage follows every write [1]."))
    async with open_llm(settings_for(chat=[server.deployment("gpt")])) as llm:
        service = AnswerService(llm, EmbeddedRetriever(), sources)
        assert await service.refresh()
        assert not await service.refresh()  # same content: no rebuild
        (sources.root / "README.md").write_text(
            HANDBOOK + "\n## Lineage\n\nOpenLineage events follow every write.\n"
        )
        answer = await service.answer("What follows every write?")
    assert [c.id for c in answer.citations] == ["README.md#lineage"]


async def test_an_empty_reply_and_a_missing_chat_model_are_errors_with_a_status(
    sources: CorpusSources, server: FakeOpenAI
) -> None:
    server.script("gpt", Completion(""))
    async with open_llm(settings_for(chat=[server.deployment("gpt")])) as llm:
        with pytest.raises(EmptyAnswer) as empty:
            await AnswerService(llm, EmbeddedRetriever(), sources).answer(QUESTION)
    assert empty.value.status == 502
    async with open_llm(settings_for(embeddings=[server.deployment("e")])) as llm:
        with pytest.raises(AiNotConfigured) as unconfigured:
            await AnswerService(llm, EmbeddedRetriever(), sources).answer(QUESTION)
    assert unconfigured.value.status == 503


@pytest.mark.parametrize(
    ("question", "problem"),
    [
        (None, "must be a string"),
        (42, "must be a string"),
        (["what?"], "must be a string"),
        ("", "must not be empty"),
        (" \n\t", "must not be empty"),
        ("x" * (MAX_QUESTION_CHARS + 1), "at most 2000 characters, not 2001"),
    ],
)
async def test_a_question_that_is_not_a_short_string_is_a_400(
    question: object, problem: str
) -> None:
    service = AnswerService(OpenAiLlm(settings_for()), EmbeddedRetriever())
    with pytest.raises(InvalidQuestion, match=problem) as refused:
        await service.answer(question)
    assert refused.value.status == 400
    assert question_text(" " + "x" * MAX_QUESTION_CHARS + " ") == "x" * MAX_QUESTION_CHARS


@given(st.one_of(st.text(max_size=2100), st.none(), st.integers(), st.binary(max_size=8)))
def test_question_text_returns_a_short_stripped_string_or_refuses(question: object) -> None:
    try:
        text = question_text(question)
    except InvalidQuestion:
        return
    assert isinstance(question, str)
    assert text == question.strip() and 0 < len(text) <= MAX_QUESTION_CHARS


def test_citations_keep_only_supplied_numbers_in_order_of_first_use() -> None:
    assert cited("A [3]. B [1, 9, 3]. C [12]. D [0].", 3) == ("A [3]. B [1, 3]. C. D.", [3, 1])
    assert cited("No sources here.", 6) == ("No sources here.", [])
    assert cited("Both [2][2].", 2) == ("Both [2][2].", [2])


@given(st.text(alphabet="ab [],0123456789", max_size=60), st.integers(0, 8))
def test_every_citation_left_in_the_text_is_a_supplied_source(text: str, sources: int) -> None:
    kept, numbers = cited(text, sources)
    assert all(1 <= n <= sources for n in numbers) and len(set(numbers)) == len(numbers)
    left, _ = cited(kept, sources)
    assert left == kept.strip()


def test_markup_that_would_fetch_a_url_is_stripped() -> None:
    assert strip_markup("a ![x](http://e/x.png) b") == "a  b"
    assert strip_markup('see [the docs](https://e/d "Docs") now') == "see the docs now"
    assert strip_markup("cited [1] (see above) and [2]") == "cited [1] (see above) and [2]"


def test_settings_choose_the_retriever_and_name_what_is_wrong() -> None:
    settings = settings_for(chat=[Deployment("gpt", "gpt", "http://127.0.0.1:9/v1")])
    llm = OpenAiLlm(settings)
    embedded = build_answer_service(llm, settings, {})
    assert isinstance(embedded.retriever, EmbeddedRetriever)
    azure = build_answer_service(
        llm,
        settings,
        {"AI_SEARCH_ENDPOINT": "https://kb.search.windows.net/", "AI_SEARCH_INDEX": "knowledge"},
    )
    assert isinstance(azure.retriever, AzureSearchRetriever)
    cases = [
        ({"AI_SEARCH_ENDPOINT": "https://kb.search.windows.net"}, "AI_SEARCH_INDEX"),
        ({"AI_SEARCH_INDEX": "knowledge"}, "AI_SEARCH_ENDPOINT"),
        ({"AI_SEARCH_ENDPOINT": "http://kb.example", "AI_SEARCH_INDEX": "kb"}, "ENDPOINT"),
        ({"AI_SEARCH_ENDPOINT": "https://kb.example", "AI_SEARCH_INDEX": "Bad_Name"}, "INDEX"),
    ]
    for environ, setting in cases:
        with pytest.raises(AiSettingsError, match=setting):
            build_answer_service(llm, settings, environ)


IMPORTS = """
import json, sys
import shared.ai.knowledge.answers
print(json.dumps([m in sys.modules for m in ("bm25s", "azure.search.documents", "sqlglot")]))
"""


def test_importing_the_service_loads_neither_bm25s_nor_the_search_sdk() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == [False, False, False]
