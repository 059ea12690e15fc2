"""The embedded BM25 index: tokens, and the passage a question's words point to."""

from __future__ import annotations

import pytest

from shared.ai.knowledge.bm25_index import Bm25Index, tokenize
from shared.ai.knowledge.corpus import CorpusSources, Passage, PassageKind

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def platform_index() -> Bm25Index:
    return Bm25Index.build(CorpusSources().load().passages)


def test_tokens_are_words_without_stopwords_and_identifiers_whole_and_in_parts() -> None:
    assert tokenize("What columns does merchant_daily have?") == [
        "column",
        "merchant_daily",
        "merchant",
        "daily",
        "have",
    ]
    assert tokenize("payment.transaction queries") == [
        "payment.transaction",
        "payment",
        "transaction",
        "query",
    ]
    assert tokenize("the class of status") == ["class", "status"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What columns does merchant_daily have?", "gold:merchant_daily"),
        ("Which fields of payment.transaction are personal data?", "contract:payment.transaction"),
        ("How do I get a token locally from the devhost?", "README.md#tokens-locally"),
        ("retry policies", "README.md#retry-policies"),
    ],
)
def test_the_platform_index_finds_the_passage_a_question_names(
    platform_index: Bm25Index, question: str, expected: str
) -> None:
    hits = platform_index.search(question, 3)
    assert hits and platform_index.passages[hits[0][0]].id.startswith(expected)
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)


def test_words_the_corpus_lacks_find_nothing(platform_index: Bm25Index) -> None:
    assert platform_index.search("zyzzyva quux", 5) == []
    assert platform_index.search("what is the", 5) == []  # stopwords alone
    assert platform_index.search("merchant", 0) == []


def test_only_passages_sharing_a_word_are_returned_and_an_empty_index_finds_nothing() -> None:
    passages = [
        Passage("a", "Alpha", PassageKind.DOC, "bronze tables land events", "a"),
        Passage("b", "Beta", PassageKind.DOC, "gold tables aggregate silver", "b"),
        Passage("c", "Gamma", PassageKind.DOC, "nothing relevant here", "c"),
    ]
    index = Bm25Index.build(passages)
    assert [i for i, _ in index.search("gold", 10)] == [1]
    assert {i for i, _ in index.search("tables", 10)} == {0, 1}
    assert Bm25Index.build([]).search("gold", 5) == []
