"""The retrieval port on Azure AI Search (`azure-search-documents`, async clients).

Chosen when `AI_SEARCH_ENDPOINT` (https://<service>.search.windows.net; plain http only to a
loopback host) and `AI_SEARCH_INDEX` are both set; one without the other is an error naming the
missing one. In Azure the app signs in with Entra ID (`DefaultAzureCredential`): its identity
needs "Search Index Data Contributor" (it uploads the passages) and, to create the index the
first time, "Search Service Contributor" (or create it beforehand from `index_definition`).

The index holds one document per passage: `key` (the passage id in URL-safe base64, as keys
allow only letters, digits, `_`, `-` and `=`), `passage_id`, `title` and `text` (searchable),
`kind`, `anchor`, `digest` (what the passage says, hashed) and, with an embeddings deployment,
`embedding` (HNSW, cosine). A refresh uploads the passages whose digest the index does not
have and deletes those the corpus no longer has, so instances that start on an index already
in step upload nothing. The search is Azure's: BM25 on the text, fused with a vector query on
`embedding` by Azure's own reciprocal rank fusion when embeddings are configured. The schema
is not migrated: configuring embeddings (or another embeddings model) later takes a new index.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.ai.errors import LlmError
from shared.ai.knowledge.corpus import Corpus, Passage, PassageKind
from shared.ai.knowledge.retrieval import Hit, Retrieval, RetrievalMode
from shared.ai.knowledge.vectors import PassageEmbeddings
from shared.ai.setting_checks import AiSettingsError, base_url

VECTOR_FIELD = "embedding"
_FIELDS = ("passage_id", "title", "kind", "anchor", "text")
_INDEX_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?")
_PAGE = 1000  # the most documents one search returns
_UPLOAD_BATCH = 500

log = logging.getLogger(__name__)


class SearchUnavailable(Exception):
    """Azure AI Search refused or failed a request; a 502 at the route."""

    status = 502


@dataclass(frozen=True)
class SearchSettings:
    endpoint: str
    index: str


def load_search_settings(environ: Mapping[str, str] | None = None) -> SearchSettings | None:
    """The Azure AI Search settings, or None when neither is set (the embedded index then)."""
    source = os.environ if environ is None else environ
    endpoint = (source.get("AI_SEARCH_ENDPOINT") or "").strip()
    index = (source.get("AI_SEARCH_INDEX") or "").strip()
    if not endpoint and not index:
        return None
    if not endpoint:
        raise AiSettingsError("AI_SEARCH_ENDPOINT", "is required with AI_SEARCH_INDEX")
    if not index:
        raise AiSettingsError("AI_SEARCH_INDEX", "is required with AI_SEARCH_ENDPOINT")
    if not _INDEX_NAME.fullmatch(index):
        raise AiSettingsError(
            "AI_SEARCH_INDEX",
            "must be 1 to 128 lower-case letters, digits or dashes, starting and ending with a "
            f"letter or digit, not {index[:80]!r}",
        )
    return SearchSettings(base_url("AI_SEARCH_ENDPOINT", endpoint), index)


def document_key(passage_id: str) -> str:
    """The index key of a passage: its id in URL-safe base64."""
    return base64.urlsafe_b64encode(passage_id.encode()).decode()


def index_definition(name: str, dimensions: int | None) -> dict[str, Any]:
    """The index, in the REST API's shape; `dimensions` (None: no vectors) of `embedding`."""
    fields: list[dict[str, Any]] = [
        {"name": "key", "type": "Edm.String", "key": True, "filterable": True, "sortable": True},
        {"name": "passage_id", "type": "Edm.String", "filterable": True},
        {"name": "title", "type": "Edm.String", "searchable": True},
        {"name": "kind", "type": "Edm.String", "filterable": True, "facetable": True},
        {"name": "anchor", "type": "Edm.String"},
        {"name": "text", "type": "Edm.String", "searchable": True},
        {"name": "digest", "type": "Edm.String", "filterable": True},
    ]
    definition: dict[str, Any] = {"name": name, "fields": fields}
    if dimensions is not None:
        fields.append(
            {
                "name": VECTOR_FIELD,
                "type": "Collection(Edm.Single)",
                "searchable": True,
                "retrievable": False,
                "dimensions": dimensions,
                "vectorSearchProfile": "knowledge-vectors",
            }
        )
        definition["vectorSearch"] = {
            "algorithms": [
                {"name": "knowledge-hnsw", "kind": "hnsw", "hnswParameters": {"metric": "cosine"}}
            ],
            "profiles": [{"name": "knowledge-vectors", "algorithm": "knowledge-hnsw"}],
        }
    return definition


def search_text(question: str) -> str:
    """A question as words for the simple query syntax, whose operators (`+ - | " * ( )`) a
    question must not trigger by accident."""
    return " ".join(re.findall(r"\w+", question)) or "*"


class AzureSearchRetriever:
    """The `Retriever` on an Azure AI Search index. `credential` defaults to Entra ID
    (`DefaultAzureCredential`); tests pass an `AzureKeyCredential`. The clients are made on
    first use and kept."""

    def __init__(
        self,
        settings: SearchSettings,
        *,
        credential: Any = None,
        embeddings: PassageEmbeddings | None = None,
    ) -> None:
        self._settings = settings
        self._credential = credential
        self._owns_credential = credential is None
        self._embeddings = embeddings
        self._client: Any = None
        self._index_client: Any = None
        self._synced: str | None = None
        self._lock = asyncio.Lock()
        self.passage_embedding_tokens = 0

    def _clients(self) -> tuple[Any, Any]:
        if self._client is None:
            from azure.search.documents.aio import SearchClient
            from azure.search.documents.indexes.aio import SearchIndexClient

            if self._credential is None:
                from azure.identity.aio import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
            endpoint, index = self._settings.endpoint, self._settings.index
            self._client = SearchClient(endpoint, index, self._credential)
            self._index_client = SearchIndexClient(endpoint, self._credential)
        return self._client, self._index_client

    async def refresh(self, corpus: Corpus) -> bool:
        """Upload the passages the index lacks (creating the index if there is none), delete
        those the corpus lacks; True when the index changed."""
        from azure.core.exceptions import AzureError

        async with self._lock:
            if corpus.fingerprint == self._synced:
                return False
            try:
                changed = await self._sync(corpus)
            except AzureError as error:
                raise SearchUnavailable(f"Azure AI Search: {error}") from error
            self._synced = corpus.fingerprint
            return changed

    async def _sync(self, corpus: Corpus) -> bool:
        client, index_client = self._clients()
        existing = await self._existing()
        keys = {document_key(p.id): p for p in corpus.passages}
        present = existing or {}
        changed = [p for key, p in keys.items() if present.get(key) != p.digest]
        stale = [key for key in present if key not in keys]
        vectors: list[list[float]] | None = None
        if self._embeddings is not None and changed:
            matrix, tokens = await self._embeddings.matrix(changed)
            self.passage_embedding_tokens += tokens
            vectors = [[float(x) for x in row] for row in matrix]
        if existing is None:
            dimensions = len(vectors[0]) if vectors else None
            if self._embeddings is not None and dimensions is None:
                dimensions = len((await self._embeddings.vector("dimensions"))[0])
            await index_client.create_or_update_index(
                index_definition(self._settings.index, dimensions)
            )
            log.info("knowledge: created the Azure AI Search index %s", self._settings.index)
        documents = [
            {
                "key": document_key(p.id),
                "passage_id": p.id,
                "title": p.title,
                "kind": p.kind.value,
                "anchor": p.anchor,
                "text": p.text,
                "digest": p.digest,
                **({VECTOR_FIELD: vectors[i]} if vectors is not None else {}),
            }
            for i, p in enumerate(changed)
        ]
        for start in range(0, len(documents), _UPLOAD_BATCH):
            _check(await client.upload_documents(documents[start : start + _UPLOAD_BATCH]))
        for start in range(0, len(stale), _UPLOAD_BATCH):
            batch = [{"key": key} for key in stale[start : start + _UPLOAD_BATCH]]
            _check(await client.delete_documents(batch))
        return bool(documents or stale)

    async def _existing(self) -> dict[str, str] | None:
        """The index's documents as key: digest; None when there is no index yet."""
        from azure.core.exceptions import ResourceNotFoundError

        client, _ = self._clients()
        found: dict[str, str] = {}
        while True:
            try:
                results = await client.search(
                    search_text="*",
                    select=["key", "digest"],
                    order_by=["key asc"],  # pages of a stable order
                    top=_PAGE,
                    skip=len(found),
                )
                page = [document async for document in results]
            except ResourceNotFoundError:
                return None
            found.update((str(d["key"]), str(d.get("digest") or "")) for d in page)
            if len(page) < _PAGE:
                return found

    async def search(self, query: str, k: int) -> Retrieval:
        from azure.core.exceptions import AzureError
        from azure.search.documents.models import VectorizedQuery

        options: dict[str, Any] = {"top": k, "select": list(_FIELDS)}
        tokens = 0
        if self._embeddings is not None:
            try:
                vector, tokens = await self._embeddings.vector(query)
            except LlmError as error:
                log.warning("knowledge: question not embedded, text search alone: %s", error)
            else:
                floats = [float(x) for x in vector]
                options["vector_queries"] = [
                    VectorizedQuery(vector=floats, k_nearest_neighbors=k, fields=VECTOR_FIELD)
                ]
        try:
            client, _ = self._clients()
            results = await client.search(search_text=search_text(query), **options)
            hits: list[Hit] = []
            async for document in results:
                hit = _hit(document)
                if hit is not None:
                    hits.append(hit)
                if len(hits) == k:
                    break
        except AzureError as error:
            raise SearchUnavailable(f"Azure AI Search: {error}") from error
        return Retrieval(tuple(hits), RetrievalMode.AZURE_SEARCH, tokens)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            await self._index_client.close()
            self._client = self._index_client = None
        if self._owns_credential and self._credential is not None:
            await self._credential.close()
            self._credential = None


def _hit(document: Mapping[str, Any]) -> Hit | None:
    """A search result as a hit; None for a document that is not a passage of ours."""
    try:
        passage = Passage(
            str(document["passage_id"]),
            str(document["title"]),
            PassageKind(document["kind"]),
            str(document["text"]),
            str(document.get("anchor") or ""),
        )
    except (KeyError, ValueError):
        return None
    return Hit(passage, float(document.get("@search.score") or 0.0))


def _check(results: Sequence[Any]) -> None:
    failed = [r for r in results if not r.succeeded]
    if failed:
        first = failed[0]
        raise SearchUnavailable(
            f"Azure AI Search refused {len(failed)} of {len(results)} documents "
            f"({first.status_code}: {first.error_message})"
        )
