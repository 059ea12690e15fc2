"""The embedded keyword index: BM25 on bm25s over the corpus's passages, built in memory.

Tokens are words in lower case with a light plural folding, less English stopwords (Lucene's,
plus question words); an identifier such as `merchant_daily` or `payment.transaction` is a
token of its own as well as its parts, so both spellings match. Nothing is downloaded: no
stemmer data, no model. bm25s (and scipy under it) is imported on the first build.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from shared.ai.knowledge.corpus import Passage

# Lucene's English stopwords (bm25s' "en"), and the words of a question that say nothing of its
# subject.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with "
    "what which who whom whose when where why how do does did can could should would i me my "
    "we our you your please tell explain about".split()
)
TITLE_WEIGHT = 2  # a passage's title counts this many times over its text

_WORD = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_PART = re.compile(r"[._-]")


def tokenize(text: str) -> list[str]:
    """The index's tokens of `text`, in order."""
    tokens: list[str] = []
    for word in _WORD.findall(text.lower()):
        parts = _PART.split(word)
        if len(parts) > 1:
            tokens.append(word)
        tokens.extend(_fold(part) for part in parts if part not in STOPWORDS)
    return tokens


def _fold(word: str) -> str:
    """A plural as its singular, roughly (queries -> query, tables -> table); the same on both
    sides of the match is all that matters."""
    if len(word) <= 3 or word[-1] != "s" or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    return word[:-1]


class Bm25Index:
    """Passages ranked by BM25 (Lucene's variant, k1 1.5, b 0.75). Build with `build`."""

    def __init__(self, passages: Sequence[Passage], model: Any) -> None:
        self.passages = tuple(passages)
        self._model = model  # a bm25s.BM25, or None for an empty corpus

    @classmethod
    def build(cls, passages: Sequence[Passage]) -> Bm25Index:
        """Index `passages` (title and text)."""
        if not passages:
            return cls((), None)
        import bm25s

        # bm25s sets its own logger to DEBUG; its progress notes are not the app's business.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        model = bm25s.BM25()
        model.index(
            [tokenize(f"{p.title}\n" * TITLE_WEIGHT + p.text) for p in passages],
            show_progress=False,
        )
        return cls(passages, model)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The `k` best passages for `query` as (position in `passages`, score), best first;
        only passages that share a token with the query."""
        if self._model is None or k <= 0:
            return []
        vocabulary = self._model.vocab_dict
        tokens = [token for token in tokenize(query) if token in vocabulary]
        if not tokens:
            return []
        import numpy as np

        scores = np.asarray(self._model.get_scores(tokens), dtype=np.float64)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order if scores[i] > 0]
