"""The document store port: containers of JSON documents with Cosmos DB's semantics.

Two adapters implement it: `embedded.documents.store` (SQLite, the default, shared with the
devhost's Cosmos DB bindings) and `shared.documents.cosmos` (Azure Cosmos DB for NoSQL). The
vocabulary (specs, queries, patches, errors) is the neutral `embedded.documents.model`, so both
adapters and their callers speak the same types; it is re-exported here for the platform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from embedded.documents.model import (
    BatchOperation,
    Change,
    ChangePage,
    Condition,
    ContainerSpec,
    DocumentConflict,
    DocumentNotFound,
    DocumentStoreError,
    InvalidDocument,
    Json,
    Page,
    PatchOperation,
    PreconditionFailed,
    Query,
    Throttled,
)

__all__ = [
    "BatchOperation",
    "Change",
    "ChangePage",
    "Condition",
    "ContainerSpec",
    "DocumentConflict",
    "DocumentContainer",
    "DocumentDatabase",
    "DocumentNotFound",
    "DocumentStoreError",
    "InvalidDocument",
    "Json",
    "Page",
    "PatchOperation",
    "PreconditionFailed",
    "Query",
    "Throttled",
]


class DocumentContainer(Protocol):
    """One container. Every write returns the stored document with its system properties
    (`_etag`, `_ts`); errors are the model's: DocumentNotFound, DocumentConflict,
    PreconditionFailed, InvalidDocument and Throttled, each distinct."""

    @property
    def spec(self) -> ContainerSpec: ...

    def read(self, id: str, partition_key: Json) -> dict[str, Json]: ...

    def read_many(self, keys: Sequence[tuple[str, Json]]) -> list[dict[str, Json] | None]:
        """Point reads of (id, partition key) pairs, answered in their order (None for one
        that does not exist): one statement in the embedded store, one point read each on
        Cosmos DB, several in flight."""
        ...

    def create(self, document: Mapping[str, Json]) -> dict[str, Json]: ...

    def upsert(self, document: Mapping[str, Json]) -> dict[str, Json]: ...

    def upsert_many(self, documents: Sequence[Mapping[str, Json]]) -> list[dict[str, Json]]:
        """Upsert documents of any partitions: one transaction in the embedded store, one
        request each on Cosmos DB, several in flight (no atomicity across partitions there: a
        failure may leave any of the others written, and a retry of the whole is safe). The
        answers come in the documents' order."""
        ...

    def replace(
        self, document: Mapping[str, Json], if_match: str | None = None
    ) -> dict[str, Json]: ...

    def delete(self, id: str, partition_key: Json, if_match: str | None = None) -> None: ...

    def patch(
        self,
        id: str,
        partition_key: Json,
        operations: Sequence[PatchOperation],
        if_match: str | None = None,
    ) -> dict[str, Json]: ...

    def batch(
        self, partition_key: Json, operations: Sequence[BatchOperation]
    ) -> list[dict[str, Json] | None]: ...

    def query(self, query: Query, continuation: str | None = None) -> Page: ...

    def changes(
        self, continuation: str | None = None, max_items: int = 100, partition_key: Json = None
    ) -> ChangePage: ...

    def purge_expired(self) -> int: ...


class DocumentDatabase(Protocol):
    """One database of containers; `container(spec)` opens a declared container."""

    def container(self, spec: ContainerSpec) -> DocumentContainer: ...

    def close(self) -> None: ...
