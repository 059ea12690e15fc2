"""The passages answers are grounded in, read from the platform's own docs and catalog.

Three sources, each read from what defines it, never restated here:

- docs: `README.md` and `benchmarks/README.md` at the app's root (the deployed app holds them
  too; a missing one is skipped), split at their markdown headings (outside code fences). A
  passage's id is the file and GitHub's anchor of its heading (`README.md#quick-start`); a long
  section is cut at paragraphs into parts `README.md#models~2`, `~3`, ...
- contracts: the newest version of every event contract (`shared.events.contracts`): its
  description, its data Struct's docstring and fields (with the values of short enumerations),
  entity key, personal fields, scoring model and bronze table. Id `contract:<event type>`.
- gold tables: every gold model (`shared.pipeline.gold.load_models`): the header comment of its
  SQL, its columns (the query's output, by sqlglot), keys and inputs. Id `gold:<name>`.

`CorpusSources.fingerprint()` hashes the sources' content (the doc files, the gold SQL files and
the contracts as rendered), cheaply, so a retriever rebuilds its index exactly when they change.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from shared.config import PROJECT_ROOT

if TYPE_CHECKING:
    from shared.events.contracts import Contract

DOCS: tuple[str, ...] = ("README.md", "benchmarks/README.md")
# Docs other than the first get their top heading before their passages' titles ("Benchmarks ›
# ingest"), since their section names alone are ambiguous.
MAX_PASSAGE_WORDS = 300
_FORMAT = "knowledge-corpus-1"  # bump when the way passages are cut changes
_SHORT_ENUM = 12  # a field's allowed values are listed up to this many

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")


class PassageKind(StrEnum):
    DOC = "doc"
    CONTRACT = "contract"
    GOLD_TABLE = "gold_table"


@dataclass(frozen=True)
class Passage:
    """A unit of retrieval and citation. `anchor` is where it lives, relative to the app's root
    (`README.md#quick-start`, `shared/pipeline/gold/merchant_daily.sql`)."""

    id: str
    title: str
    kind: PassageKind
    text: str
    anchor: str

    @cached_property
    def digest(self) -> str:
        """A hash of what the passage says: what caches of its embedding are keyed by."""
        content = "\0".join((self.kind.value, self.title, self.text))
        return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class Corpus:
    """The passages, in a stable order, and the fingerprint of the sources they came from."""

    passages: tuple[Passage, ...]
    fingerprint: str

    def get(self, passage_id: str) -> Passage | None:
        return self._by_id.get(passage_id)

    @cached_property
    def _by_id(self) -> dict[str, Passage]:
        return {passage.id: passage for passage in self.passages}


@dataclass(frozen=True)
class CorpusSources:
    """Where the corpus comes from. The defaults are the platform's own: the docs at the app's
    root, the gold models' directory and the newest version of every contract."""

    root: Path = PROJECT_ROOT
    docs: tuple[str, ...] = DOCS
    gold_dir: Path | None = None
    contracts: tuple[Contract, ...] | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """A hash of the sources' content; it changes exactly when a passage may."""
        digest = hashlib.sha256(_FORMAT.encode())
        for name, content in self._doc_files():
            digest.update(f"\0doc\0{name}\0".encode() + content)
        for path in self._gold_files():
            digest.update(f"\0gold\0{path.name}\0".encode() + path.read_bytes())
        for passage in _contract_passages(self._contracts(), self.root):
            digest.update(f"\0contract\0{passage.id}\0{passage.text}".encode())
        return digest.hexdigest()

    def load(self) -> Corpus:
        """Every passage, with the fingerprint of the sources read."""
        fingerprint = self.fingerprint()
        passages: list[Passage] = []
        for index, (name, content) in enumerate(self._doc_files()):
            text = content.decode("utf-8", errors="replace")
            passages.extend(markdown_passages(name, text, titled=index > 0))
        passages.extend(_contract_passages(self._contracts(), self.root))
        passages.extend(_gold_passages(self._gold_dir(), self.root))
        return Corpus(tuple(passages), fingerprint)

    def _doc_files(self) -> Iterator[tuple[str, bytes]]:
        for name in self.docs:
            path = self.root / name
            if path.is_file():
                yield name, path.read_bytes()

    def _gold_dir(self) -> Path:
        if self.gold_dir is not None:
            return self.gold_dir
        from shared.pipeline.gold import GOLD_DIR

        return GOLD_DIR

    def _gold_files(self) -> list[Path]:
        return sorted(self._gold_dir().glob("*.sql"))

    def _contracts(self) -> tuple[Contract, ...]:
        if self.contracts is not None:
            return self.contracts
        from shared.events.contracts import ContractRegistry

        return ContractRegistry().latest()


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@dataclass
class _Section:
    level: int
    heading: str
    title: str
    lines: list[str] = field(default_factory=list)


def markdown_passages(name: str, text: str, *, titled: bool = False) -> list[Passage]:
    """The passages of a markdown document `name`: one per heading's section (long ones cut at
    paragraphs), titled by the headings above it; the top heading is left out of the titles
    unless `titled`. Empty sections give none."""
    sections = _sections(name, text, titled=titled)
    seen: dict[str, int] = {}
    passages: list[Passage] = []
    for section in sections:
        anchor = slug(section.heading) if section.heading else ""
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        if count:  # GitHub numbers repeated anchors: quick-start, quick-start-1, ...
            anchor = f"{anchor}-{count}"
        located = f"{name}#{anchor}" if anchor else name
        for part, body in enumerate(_parts(section.lines), start=1):
            ident = located if part == 1 else f"{located}~{part}"
            passages.append(Passage(ident, section.title, PassageKind.DOC, body, located))
    return passages


def _sections(name: str, text: str, *, titled: bool) -> list[_Section]:
    top = next(
        (m[2] for m in map(_HEADING.match, _outside_fences(text)) if m and len(m[1]) == 1),
        None,
    )
    sections = [_Section(0, "", _plain(top) if top else name)]
    trail: list[tuple[int, str]] = []
    fence: str | None = None
    for line in text.splitlines():
        marker = _FENCE.match(line)
        if marker and (fence is None or marker[1].startswith(fence)):
            fence = None if fence else marker[1][0] * 3
        heading = _HEADING.match(line) if fence is None and not marker else None
        if heading is None:
            sections[-1].lines.append(line)
            continue
        level, words = len(heading[1]), heading[2]
        while trail and trail[-1][0] >= level:
            trail.pop()
        trail.append((level, words))
        names = [_plain(h) for lvl, h in trail if lvl > 1] or [_plain(words)]
        if titled and top is not None and level > 1:
            names.insert(0, _plain(top))
        sections.append(_Section(level, words, " › ".join(names)))
    return sections


def _outside_fences(text: str) -> Iterator[str]:
    fence: str | None = None
    for line in text.splitlines():
        marker = _FENCE.match(line)
        if marker and (fence is None or marker[1].startswith(fence)):
            fence = None if fence else marker[1][0] * 3
            continue
        if fence is None:
            yield line


def _plain(heading: str) -> str:
    """A heading as text: inline code and emphasis marks dropped."""
    return re.sub(r"[`*]", "", heading).strip()


def _parts(lines: Sequence[str]) -> list[str]:
    """A section's body cut at blank lines (outside code fences) into parts of at most
    `MAX_PASSAGE_WORDS` words; a longer paragraph is a part of its own."""
    paragraphs: list[list[str]] = [[]]
    fence = False
    for line in lines:
        if _FENCE.match(line):
            fence = not fence
        if not line.strip() and not fence:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(line)
    parts: list[str] = []
    current: list[str] = []
    words = 0
    for paragraph in filter(None, paragraphs):
        text = "\n".join(paragraph)
        size = len(text.split())
        if current and words + size > MAX_PASSAGE_WORDS:
            parts.append("\n\n".join(current))
            current, words = [], 0
        current.append(text)
        words += size
    if current:
        parts.append("\n\n".join(current))
    return parts


_contract_cache: dict[tuple[object, ...], tuple[Passage, ...]] = {}


def _contract_passages(contracts: Sequence[Contract], root: Path) -> tuple[Passage, ...]:
    # Contracts are code (frozen, compared by identity): they cannot change within a process,
    # so each set is rendered once.
    key = (root, *contracts)
    cached = _contract_cache.get(key)
    if cached is None:
        cached = tuple(_contract_passage(contract, root) for contract in contracts)
        _contract_cache[key] = cached
    return cached


def _contract_passage(contract: Contract, root: Path) -> Passage:
    import msgspec.inspect

    info = msgspec.inspect.type_info(contract.data)
    assert isinstance(info, msgspec.inspect.StructType)
    fields: list[str] = []
    for item in info.fields:
        kind = item.type
        if isinstance(kind, msgspec.inspect.LiteralType) and len(kind.values) <= _SHORT_ENUM:
            fields.append(f"{item.name} (one of {', '.join(map(str, kind.values))})")
        else:
            fields.append(item.name)
    lines = [
        f"Event contract {contract.event_type}, version {contract.version}: "
        f"{contract.description}".rstrip(),
        (contract.data.__doc__ or "").strip(),
        f"Fields: {', '.join(fields)}.",
        f"Entity key (the partition key): {contract.entity_key}.",
    ]
    for name, pii in contract.pii.items():
        kept = f"; the last {pii.keep_last} kept as {pii.kept_as}" if pii.kept_as else ""
        lines.append(f"Personal data: {name} lands as a keyed pseudonym{kept}.")
    if contract.scored_by:
        lines.append(f"Scored as it lands by the {contract.scored_by} model.")
    lines.append(
        f"Lands in the bronze table bronze/{contract.table}; CloudEvents dataschema "
        f"{contract.dataschema}."
    )
    source = _relative(sys.modules[contract.data.__module__].__file__, root)
    return Passage(
        f"contract:{contract.event_type}",
        f"Event contract {contract.event_type}",
        PassageKind.CONTRACT,
        "\n".join(line for line in lines if line),
        source,
    )


def _gold_passages(directory: Path, root: Path) -> list[Passage]:
    from shared.pipeline.gold import load_models

    passages = []
    for name, model in load_models(directory).items():
        lines = [
            f"Gold table gold/{name}: {_model_description(name, model.sql)}",
            f"Columns: {', '.join(_output_columns(model.sql))}.",
        ]
        if model.keys:
            lines.append(f"Keys (one row per): {', '.join(model.keys)}.")
        lines.append(f"Reads: {', '.join(sorted(model.inputs))}.")
        passages.append(
            Passage(
                f"gold:{name}",
                f"Gold table {name}",
                PassageKind.GOLD_TABLE,
                "\n".join(lines),
                _relative(str(directory / f"{name}.sql"), root),
            )
        )
    return passages


def _model_description(name: str, sql: str) -> str:
    """The header comment of a model's SQL, less its `keys:` and `empty_if_missing:` lines."""
    lines: list[str] = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        text = line.removeprefix("--").strip()
        if not re.match(r"(keys|empty_if_missing):", text):
            lines.append(text)
    return " ".join(lines).removeprefix(f"{name}:").strip()


def _output_columns(sql: str) -> list[str]:
    import sqlglot
    from sqlglot import exp

    query = sqlglot.parse_one(sql, read="duckdb")
    return list(query.named_selects) if isinstance(query, exp.Query) else []


def _relative(path: str | None, root: Path) -> str:
    if path is None:
        return ""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).name
