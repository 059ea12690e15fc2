"""The knowledge corpus: passages from the real docs and catalog, markdown cut at headings, and
the fingerprint that says when to rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.ai.knowledge.corpus import (
    MAX_PASSAGE_WORDS,
    CorpusSources,
    PassageKind,
    markdown_passages,
    slug,
)
from shared.events.contracts import CONTRACTS
from shared.pipeline.gold import load_models

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def platform_corpus() -> CorpusSources:
    return CorpusSources()


def test_the_real_corpus_holds_the_readme_the_contracts_and_the_gold_tables(
    platform_corpus: CorpusSources,
) -> None:
    corpus = platform_corpus.load()
    by_id = {p.id: p for p in corpus.passages}
    assert len(by_id) == len(corpus.passages), "passage ids are unique"
    quick_start = by_id["README.md#quick-start"]
    assert quick_start.title == "Quick start" and quick_start.kind is PassageKind.DOC
    assert quick_start.anchor == "README.md#quick-start"
    tokens = by_id["README.md#tokens-locally-the-devhost-as-issuer"]
    assert tokens.title == "Security: who may do what › Tokens locally: the devhost as issuer"
    assert any(p.id.startswith("benchmarks/README.md#") for p in corpus.passages)
    for contract in CONTRACTS:
        passage = by_id[f"contract:{contract.event_type}"]
        assert passage.kind is PassageKind.CONTRACT
        assert contract.description in passage.text  # from the code, not restated
        assert passage.anchor == "shared/events/contracts.py"
    payments = by_id["contract:payment.transaction"].text
    assert "channel (one of atm, ecommerce, pos)" in payments
    assert "card_number lands as a keyed pseudonym; the last 4 kept as card_last4" in payments
    for name in load_models():
        passage = by_id[f"gold:{name}"]
        assert passage.kind is PassageKind.GOLD_TABLE
        assert passage.anchor == f"shared/pipeline/gold/{name}.sql"
    merchant = by_id["gold:merchant_daily"].text
    assert "each merchant's transactions per UTC day and currency" in merchant
    assert "Columns: merchant_id, merchant_category, day, currency, txn_count" in merchant
    assert "Keys (one row per): merchant_id, day, currency." in merchant
    assert corpus.get("gold:merchant_daily") is by_id["gold:merchant_daily"]


def test_loading_twice_gives_the_same_fingerprint_and_passages(
    platform_corpus: CorpusSources,
) -> None:
    first, second = platform_corpus.load(), platform_corpus.load()
    assert first.fingerprint == second.fingerprint == platform_corpus.fingerprint()
    assert first.passages == second.passages


DOC = """# Handbook

Intro of the handbook.

## Set up

Run `make run`.

```bash
# not a heading: a comment in a fenced block
make test
```

### Set up › tokens

Ask the devhost for a token.

## Set up

A second section of the same name.

## Empty

## Last
Words.
"""


def test_markdown_is_cut_at_headings_outside_code_fences_with_githubs_anchors() -> None:
    passages = markdown_passages("HANDBOOK.md", DOC)
    assert [(p.id, p.title) for p in passages] == [
        ("HANDBOOK.md#handbook", "Handbook"),
        ("HANDBOOK.md#set-up", "Set up"),
        ("HANDBOOK.md#set-up--tokens", "Set up › Set up › tokens"),
        ("HANDBOOK.md#set-up-1", "Set up"),
        ("HANDBOOK.md#last", "Last"),
    ]
    assert "# not a heading" in passages[1].text and "make test" in passages[1].text
    assert slug("The `durableClient` binding: (v2)") == "the-durableclient-binding-v2"


def test_a_titled_document_prefixes_its_top_heading() -> None:
    passages = markdown_passages("bench.md", "# Benchmarks\n\n## ingest\n\nFigures.\n", titled=True)
    assert [p.title for p in passages] == ["Benchmarks › ingest"]


def test_a_long_section_is_cut_into_parts_at_paragraphs() -> None:
    paragraph = " ".join(["word"] * 120)
    text = "## Long\n\n" + "\n\n".join([paragraph] * 5)
    passages = markdown_passages("LONG.md", text)
    assert [p.id for p in passages] == ["LONG.md#long", "LONG.md#long~2", "LONG.md#long~3"]
    assert all(p.anchor == "LONG.md#long" for p in passages)
    assert all(len(p.text.split()) <= MAX_PASSAGE_WORDS for p in passages)


def docs_only(root: Path) -> CorpusSources:
    gold = root / "gold"
    gold.mkdir(exist_ok=True)
    return CorpusSources(root=root, docs=("README.md", "missing.md"), gold_dir=gold, contracts=())


def test_the_fingerprint_changes_exactly_when_a_source_does(tmp_path: Path) -> None:
    sources = docs_only(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# Doc\n\n## Alpha\n\nFirst.\n", encoding="utf-8")
    before = sources.load()
    readme.write_text("# Doc\n\n## Alpha\n\nFirst.\n", encoding="utf-8")  # same bytes
    assert sources.fingerprint() == before.fingerprint
    readme.write_text("# Doc\n\n## Alpha\n\nFirst.\n\n## Beta\n\nNew.\n", encoding="utf-8")
    after = sources.load()
    assert after.fingerprint != before.fingerprint
    assert after.get("README.md#beta") is not None and before.get("README.md#beta") is None
    (tmp_path / "gold" / "t.sql").write_text("-- t: a table.\nSELECT 1 AS one\n")
    with_gold = sources.load()
    assert with_gold.fingerprint != after.fingerprint
    table = with_gold.get("gold:t")
    assert table is not None and "a table." in table.text and "Columns: one." in table.text
