"""The embedded retriever: BM25 in memory, fused with vectors by reciprocal rank fusion.

With an embeddings deployment, both rankings are taken `CANDIDATES` deep and fused (RRF, k=60:
a passage scores the sum of 1/(60 + its rank) over the rankings it is in); without one, or when
the deployment fails (the request is still answered), BM25 alone ranks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.ai.errors import LlmError
from shared.ai.knowledge.bm25_index import Bm25Index
from shared.ai.knowledge.corpus import Corpus, Passage
from shared.ai.knowledge.retrieval import Hit, Retrieval, RetrievalMode
from shared.ai.knowledge.vectors import PassageEmbeddings, cosine_top_k

if TYPE_CHECKING:
    from shared.ai.knowledge.vectors import Matrix

RRF_K = 60
CANDIDATES = 30  # how deep each ranking goes before fusion

log = logging.getLogger(__name__)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K
) -> list[tuple[int, float]]:
    """Items of several rankings (best first) by the sum of 1/(k + rank), rank from 1; ties
    keep the order in which the items were first seen (the first ranking's first)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda entry: -entry[1])


@dataclass(frozen=True)
class _Index:
    fingerprint: str | None
    passages: tuple[Passage, ...]
    bm25: Bm25Index
    vectors: Matrix | None = None


_EMPTY = _Index(None, (), Bm25Index((), None))


class EmbeddedRetriever:
    """The `Retriever` on embedded indexes; `embeddings` (None: BM25 only) adds vectors."""

    def __init__(self, embeddings: PassageEmbeddings | None = None) -> None:
        self._embeddings = embeddings
        self._index = _EMPTY
        self._lock = asyncio.Lock()
        self.passage_embedding_tokens = 0  # spent embedding passages, since the start

    async def refresh(self, corpus: Corpus) -> bool:
        """Rebuild BM25 (and the vectors of the passages that changed) when the corpus's
        fingerprint changed; vectors that failed to build before are tried again."""
        async with self._lock:
            changed = corpus.fingerprint != self._index.fingerprint
            if changed:
                bm25 = await asyncio.to_thread(Bm25Index.build, corpus.passages)
                self._index = _Index(corpus.fingerprint, corpus.passages, bm25)
            if self._embeddings is not None and self._index.vectors is None:
                try:
                    vectors, tokens = await self._embeddings.matrix(self._index.passages)
                except LlmError as error:
                    log.warning("knowledge: passage vectors not built, BM25 alone: %s", error)
                else:
                    self.passage_embedding_tokens += tokens
                    index = self._index
                    self._index = _Index(index.fingerprint, index.passages, index.bm25, vectors)
            return changed

    async def search(self, query: str, k: int) -> Retrieval:
        index = self._index  # one consistent snapshot, whatever a refresh does meanwhile
        keyword = index.bm25.search(query, max(k, CANDIDATES))
        if self._embeddings is not None and index.vectors is not None:
            try:
                vector, tokens = await self._embeddings.vector(query)
            except LlmError as error:
                log.warning("knowledge: question not embedded, BM25 alone: %s", error)
            else:
                dense = cosine_top_k(index.vectors, vector, CANDIDATES)
                fused = reciprocal_rank_fusion([[i for i, _ in keyword], [i for i, _ in dense]])
                hits = tuple(Hit(index.passages[i], score) for i, score in fused[:k])
                return Retrieval(hits, RetrievalMode.HYBRID, tokens)
        hits = tuple(Hit(index.passages[i], score) for i, score in keyword[:k])
        return Retrieval(hits, RetrievalMode.BM25)

    async def aclose(self) -> None:
        """Nothing to close: the LLM port is the caller's."""
