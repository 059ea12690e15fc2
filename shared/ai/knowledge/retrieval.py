"""The retrieval port: passages for a question, from an index kept in step with the corpus.

Two adapters, chosen from settings (`shared.ai.knowledge.answers.build_answer_service`):
`EmbeddedRetriever` (BM25 in memory, fused with vectors when an embeddings deployment is set)
and `AzureSearchRetriever` (Azure AI Search).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shared.ai.knowledge.corpus import Corpus, Passage


class RetrievalMode(StrEnum):
    BM25 = "bm25"
    HYBRID = "hybrid"  # BM25 and vectors, by reciprocal rank fusion
    AZURE_SEARCH = "azure_search"


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # comparable within one retrieval only


@dataclass(frozen=True)
class Retrieval:
    """The passages found, best first, how they were found, and the embedding tokens spent on
    the question (0 without vectors)."""

    hits: tuple[Hit, ...]
    mode: RetrievalMode
    embedding_tokens: int = 0


class Retriever(Protocol):
    async def refresh(self, corpus: Corpus) -> bool:
        """Bring the index in step with `corpus`; True when it had to change (a corpus of the
        fingerprint already indexed changes nothing)."""
        ...

    async def search(self, query: str, k: int) -> Retrieval:
        """The `k` best passages for `query`, from the index as last refreshed."""
        ...

    async def aclose(self) -> None: ...
