"""Passage vectors from the LLM port's embeddings deployment, and cosine top-k over them.

Passages are embedded in batches and remembered by their digest, so a rebuild after a doc
changed embeds only the passages that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.ai.knowledge.corpus import Passage
from shared.ai.port import Llm

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]

EMBEDDING_BATCH = 64
MAX_EMBEDDED_CHARS = 8_000  # about 2,000 tokens, well inside every embeddings model's window


def embedded_text(passage: Passage) -> str:
    """What is embedded of a passage: its title, then its text (cut if very long)."""
    return f"{passage.title}\n\n{passage.text}"[:MAX_EMBEDDED_CHARS]


class PassageEmbeddings:
    """Embeds passages through `llm`, keeping each vector (unit length) by passage digest."""

    def __init__(self, llm: Llm, *, batch_size: int = EMBEDDING_BATCH) -> None:
        self._llm = llm
        self._batch_size = batch_size
        self._cache: dict[str, Matrix] = {}

    async def matrix(self, passages: Sequence[Passage]) -> tuple[Matrix, int]:
        """One unit row per passage, in order, and the tokens spent embedding the passages not
        embedded before. Vectors of passages no longer given are forgotten."""
        import numpy as np

        missing = {p.digest: p for p in passages if p.digest not in self._cache}
        pending = list(missing.values())
        tokens = 0
        for start in range(0, len(pending), self._batch_size):
            batch = pending[start : start + self._batch_size]
            vectors, spent = await self._embed([embedded_text(p) for p in batch])
            tokens += spent
            for passage, vector in zip(batch, vectors, strict=True):
                self._cache[passage.digest] = vector
        wanted = {p.digest for p in passages}
        for digest in [d for d in self._cache if d not in wanted]:
            del self._cache[digest]
        if not passages:
            return np.zeros((0, 0), dtype=np.float32), tokens
        return np.stack([self._cache[p.digest] for p in passages]), tokens

    async def vector(self, text: str) -> tuple[Matrix, int]:
        """The unit vector of `text` (a question), and the tokens spent."""
        vectors, tokens = await self._embed([text])
        return vectors[0], tokens

    async def _embed(self, texts: list[str]) -> tuple[list[Matrix], int]:
        import numpy as np

        result = await self._llm.embeddings(texts)
        if len(result.vectors) != len(texts):
            raise ValueError(
                f"the embeddings deployment {result.deployment} returned "
                f"{len(result.vectors)} vectors for {len(texts)} texts"
            )
        vectors = [_unit(np.asarray(v, dtype=np.float32)) for v in result.vectors]
        return vectors, result.usage.total_tokens if result.usage else 0


def _unit(vector: Matrix) -> Matrix:
    import numpy as np

    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def cosine_top_k(matrix: Matrix, vector: Matrix, k: int) -> list[tuple[int, float]]:
    """The `k` rows of `matrix` (unit rows) nearest to `vector` (unit) by cosine, as (row,
    similarity), best first."""
    import numpy as np

    if k <= 0 or matrix.shape[0] == 0 or matrix.shape[1] != vector.shape[0]:
        return []
    similarities = matrix @ vector
    order = np.argsort(-similarities, kind="stable")[:k]
    return [(int(i), float(similarities[i])) for i in order]
