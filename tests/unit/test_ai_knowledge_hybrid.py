"""The embedded retriever: BM25 alone without embeddings, fused with vectors from the real port
(against the loopback OpenAI server) with them, and a rebuild that embeds only what changed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.ai.knowledge.corpus import CorpusSources
from shared.ai.knowledge.hybrid import EmbeddedRetriever, reciprocal_rank_fusion
from shared.ai.knowledge.retrieval import RetrievalMode
from shared.ai.knowledge.vectors import PassageEmbeddings, cosine_top_k, embedded_text
from shared.ai.llm import OpenAiLlm
from tests.fakes.openai_server import FakeOpenAI, ServerError, open_llm, settings_for

pytestmark = pytest.mark.unit

HANDBOOK = """# Handbook

## Ingestion

Events arrive on the hub and land in bronze tables.

## Gold tables

Gold tables aggregate silver rows per merchant and day.

## Privacy

Erasure removes a subject from every table version.
"""


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


@pytest.fixture
async def llm(server: FakeOpenAI) -> AsyncIterator[OpenAiLlm]:
    async with open_llm(settings_for(embeddings=[server.deployment("embed")])) as port:
        yield port


def embedded_inputs(server: FakeOpenAI) -> list[str]:
    return [text for r in server.received("embed", "embeddings") for text in r.body["input"]]


def test_reciprocal_rank_fusion_sums_one_over_sixty_plus_rank() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]])
    assert [item for item, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2][1] == pytest.approx(1 / 62)
    assert reciprocal_rank_fusion([[5, 6], []]) == [(5, 1 / 61), (6, 1 / 62)]


async def test_without_embeddings_bm25_alone_ranks(sources: CorpusSources) -> None:
    retriever = EmbeddedRetriever()
    assert await retriever.refresh(sources.load())
    found = await retriever.search("which tables aggregate per merchant", 2)
    assert found.mode is RetrievalMode.BM25 and found.embedding_tokens == 0
    assert found.hits[0].passage.id == "README.md#gold-tables"
    assert (await retriever.search("zyzzyva", 2)).hits == ()


async def test_with_embeddings_both_rankings_are_fused(
    sources: CorpusSources, server: FakeOpenAI, llm: OpenAiLlm
) -> None:
    retriever = EmbeddedRetriever(PassageEmbeddings(llm))
    corpus = sources.load()
    assert await retriever.refresh(corpus)
    assert sorted(embedded_inputs(server)) == sorted(embedded_text(p) for p in corpus.passages)
    found = await retriever.search("which tables aggregate per merchant", 3)
    assert found.mode is RetrievalMode.HYBRID and found.embedding_tokens > 0
    assert "README.md#gold-tables" in [hit.passage.id for hit in found.hits]
    assert embedded_inputs(server)[-1] == "which tables aggregate per merchant"
    # Words BM25 has never seen: the vectors alone still rank every passage.
    assert len((await retriever.search("zyzzyva", 3)).hits) == 3


async def test_the_nearest_vector_of_a_passages_own_text_is_that_passage(
    sources: CorpusSources, llm: OpenAiLlm
) -> None:
    embeddings = PassageEmbeddings(llm)
    passages = sources.load().passages
    matrix, tokens = await embeddings.matrix(passages)
    assert matrix.shape == (len(passages), 8) and tokens > 0
    vector, _ = await embeddings.vector(embedded_text(passages[2]))
    nearest = cosine_top_k(matrix, vector, 2)
    assert nearest[0][0] == 2 and nearest[0][1] == pytest.approx(1.0)


async def test_a_rebuild_embeds_only_the_passages_that_changed(
    sources: CorpusSources, server: FakeOpenAI, llm: OpenAiLlm
) -> None:
    retriever = EmbeddedRetriever(PassageEmbeddings(llm, batch_size=2))
    assert await retriever.refresh(sources.load())
    assert len(server.received("embed", "embeddings")) == 2  # 3 passages, batches of 2
    assert not await retriever.refresh(sources.load())  # same sources: nothing rebuilt
    readme = sources.root / "README.md"
    readme.write_text(HANDBOOK + "\n## Lineage\n\nOpenLineage events follow every write.\n")
    before = len(embedded_inputs(server))
    assert await retriever.refresh(sources.load())
    assert embedded_inputs(server)[before:] == ["Lineage\n\nOpenLineage events follow every write."]
    found = await retriever.search("lineage events", 1)
    assert found.hits[0].passage.id == "README.md#lineage"


async def test_a_failing_embeddings_deployment_falls_back_to_bm25_and_recovers(
    sources: CorpusSources, server: FakeOpenAI, llm: OpenAiLlm
) -> None:
    retriever = EmbeddedRetriever(PassageEmbeddings(llm))
    server.script("embed", ServerError())
    corpus = sources.load()
    assert await retriever.refresh(corpus)  # BM25 built; the vectors failed
    assert (await retriever.search("erasure", 1)).mode is RetrievalMode.BM25
    assert not await retriever.refresh(corpus)  # the vectors are tried again, and built
    assert (await retriever.search("erasure", 1)).mode is RetrievalMode.HYBRID
    server.script("embed", ServerError())  # the question cannot be embedded
    found = await retriever.search("erasure", 1)
    assert found.mode is RetrievalMode.BM25
    assert found.hits[0].passage.id == "README.md#privacy"
