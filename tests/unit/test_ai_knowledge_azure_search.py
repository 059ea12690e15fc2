"""The Azure AI Search adapter on the real SDK, against a loopback service that speaks the REST
wire format: the index created once, passages uploaded only when they changed, and searches
with and without a vector query."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from azure.core.credentials import AzureKeyCredential

from shared.ai.knowledge import azure_search
from shared.ai.knowledge.answers import AnswerService
from shared.ai.knowledge.azure_search import (
    AzureSearchRetriever,
    SearchSettings,
    SearchUnavailable,
    document_key,
    search_text,
)
from shared.ai.knowledge.corpus import CorpusSources
from shared.ai.knowledge.retrieval import RetrievalMode
from shared.ai.knowledge.vectors import PassageEmbeddings
from shared.ai.llm import OpenAiLlm
from tests.fakes.azure_search import API_KEY, FakeAzureSearch
from tests.fakes.openai_server import Completion, FakeOpenAI, open_llm, settings_for

pytestmark = pytest.mark.unit

HANDBOOK = """# Handbook

## Ingestion

Events arrive on the hub and land in bronze tables.

## Gold tables

Gold tables aggregate silver rows per merchant and day.

## Privacy

Erasure removes a subject from every table version.
"""
INDEX = "knowledge"


@pytest.fixture
def sources(tmp_path: Path) -> CorpusSources:
    (tmp_path / "README.md").write_text(HANDBOOK, encoding="utf-8")
    (tmp_path / "gold").mkdir()
    return CorpusSources(
        root=tmp_path, docs=("README.md",), gold_dir=tmp_path / "gold", contracts=()
    )


@pytest.fixture
def search() -> Iterator[FakeAzureSearch]:
    with FakeAzureSearch() as running:
        yield running


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as running:
        yield running


@pytest.fixture
async def llm(openai: FakeOpenAI) -> AsyncIterator[OpenAiLlm]:
    chat, embeddings = openai.deployment("gpt"), openai.deployment("embed")
    async with open_llm(settings_for(chat=[chat], embeddings=[embeddings])) as port:
        yield port


def retriever(
    search: FakeAzureSearch,
    embeddings: PassageEmbeddings | None = None,
    key: str = API_KEY,
) -> AzureSearchRetriever:
    return AzureSearchRetriever(
        SearchSettings(search.url, INDEX), credential=AzureKeyCredential(key), embeddings=embeddings
    )


async def test_the_first_refresh_creates_the_index_and_later_ones_upload_only_changes(
    search: FakeAzureSearch, sources: CorpusSources, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = retriever(search)
    try:
        assert await first.refresh(sources.load())
        fields = {f["name"]: f for f in search.indexes[INDEX]["fields"]}
        assert fields["key"]["key"] and "embedding" not in fields
        stored = search.documents[INDEX]
        key = document_key("README.md#gold-tables")
        assert base64.urlsafe_b64decode(key).decode() == "README.md#gold-tables"
        assert stored[key]["title"] == "Gold tables" and stored[key]["kind"] == "doc"
        assert len(stored) == 3
        assert not await first.refresh(sources.load())  # same fingerprint: no request at all
        assert len(search.received("search.index")) == 1
    finally:
        await first.aclose()
    second = retriever(search)  # another instance, on an index already in step
    monkeypatch.setattr(azure_search, "_PAGE", 2)  # its listing takes two pages
    try:
        listed = len(search.received("search.post.search"))
        assert not await second.refresh(sources.load())
        pages = [r.body for r in search.received("search.post.search")[listed:]]
        assert pages == [
            {"search": "*", "select": "key,digest", "orderby": "key asc", "top": 2, "skip": skip}
            for skip in (0, 2)
        ]
        assert len(search.received("index")) == 1 and len(search.received("search.index")) == 1
        readme = sources.root / "README.md"
        readme.write_text(
            HANDBOOK.replace(
                "## Privacy\n\nErasure removes a subject from every table version.\n", ""
            )
            + "\n## Lineage\n\nOpenLineage events follow every write.\n"
        )
        assert await second.refresh(sources.load())
        upload, delete = search.received("search.index")[1:]
        assert [a["passage_id"] for a in upload.body["value"]] == ["README.md#lineage"]
        assert delete.body["value"] == [
            {"@search.action": "delete", "key": document_key("README.md#privacy")}
        ]
        assert document_key("README.md#privacy") not in search.documents[INDEX]
    finally:
        await second.aclose()


async def test_a_search_returns_the_passages_of_the_index_best_first(
    search: FakeAzureSearch, sources: CorpusSources
) -> None:
    adapter = retriever(search)
    try:
        await adapter.refresh(sources.load())
        # A document that is not a passage of ours (ranked second) is skipped.
        search.documents[INDEX]["other"] = {"key": "other", "title": "merchant gold", "kind": "pdf"}
        found = await adapter.search("gold -tables | (merchant)", 2)
    finally:
        await adapter.aclose()
    assert found.mode is RetrievalMode.AZURE_SEARCH and found.embedding_tokens == 0
    assert [hit.passage.id for hit in found.hits] == ["README.md#gold-tables"]
    assert found.hits[0].passage.anchor == "README.md#gold-tables"
    body = search.received("search.post.search")[-1].body
    assert body["search"] == "gold tables merchant" and body["top"] == 2
    assert body["select"] == "passage_id,title,kind,anchor,text"
    assert "vectorQueries" not in body
    assert search_text("?!") == "*"


async def test_with_embeddings_passages_carry_vectors_and_searches_a_vector_query(
    search: FakeAzureSearch, sources: CorpusSources, openai: FakeOpenAI, llm: OpenAiLlm
) -> None:
    adapter = retriever(search, PassageEmbeddings(llm))
    try:
        await adapter.refresh(sources.load())
        fields = {f["name"]: f for f in search.indexes[INDEX]["fields"]}
        assert fields["embedding"]["dimensions"] == 8
        assert all(len(d["embedding"]) == 8 for d in search.documents[INDEX].values())
        found = await adapter.search("Which tables aggregate per merchant?", 3)
    finally:
        await adapter.aclose()
    assert found.mode is RetrievalMode.AZURE_SEARCH and found.embedding_tokens > 0
    assert "README.md#gold-tables" in [hit.passage.id for hit in found.hits]
    (query,) = search.received("search.post.search")[-1].body["vectorQueries"]
    assert query["kind"] == "vector" and query["fields"] == "embedding" and query["k"] == 3
    assert len(query["vector"]) == 8
    assert openai.received("embed", "embeddings")[-1].body["input"] == [
        "Which tables aggregate per merchant?"
    ]


async def test_the_answer_service_answers_from_azure_search(
    search: FakeAzureSearch, sources: CorpusSources, openai: FakeOpenAI, llm: OpenAiLlm
) -> None:
    openai.script("gpt", Completion("Gold tables do [1]."))
    service = AnswerService(llm, retriever(search), sources)
    try:
        answer = await service.answer("Which tables aggregate per merchant?")
    finally:
        await service.aclose()
    assert answer.retrieval is RetrievalMode.AZURE_SEARCH
    assert [c.id for c in answer.citations] == ["README.md#gold-tables"]


async def test_a_refused_request_is_search_unavailable(
    search: FakeAzureSearch, sources: CorpusSources
) -> None:
    adapter = retriever(search, key="wrong")
    try:
        with pytest.raises(SearchUnavailable) as refused:
            await adapter.refresh(sources.load())
        with pytest.raises(SearchUnavailable):
            await adapter.search("gold", 3)
    finally:
        await adapter.aclose()
    assert refused.value.status == 502
