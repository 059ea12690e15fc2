"""Pipeline state (watermarks, gold inputs) as documents of the document store.

Each document has an etag and every write names the etag it read (`if_match`), so two runs
of one table cannot both move its watermark. The container is `pipeline_state`, partitioned
by pipeline; a document's id is its key (`silver:payments`, `gold:daily_totals`).
"""

from __future__ import annotations

from typing import Any, Protocol

from shared.documents.port import (
    ContainerSpec,
    DocumentConflict,
    DocumentContainer,
    DocumentDatabase,
    DocumentNotFound,
    PreconditionFailed,
)

STATE_CONTAINER = ContainerSpec("pipeline_state", "/pipeline")


class StateConflict(RuntimeError):
    """The document changed since it was read (another run moved it)."""


class PipelineStateStore(Protocol):
    """Versioned JSON documents keyed by (pipeline, key)."""

    def read(self, pipeline: str, key: str) -> tuple[dict[str, Any], str] | None:
        """The document and its etag, or None."""
        ...

    def write(self, pipeline: str, key: str, document: dict[str, Any], etag: str | None) -> str:
        """Store the document if its etag is still `etag` (None: must not exist); new etag."""
        ...


class DocumentStateStore:
    """Pipeline state in a container of the document store (Cosmos DB, or embedded SQLite)."""

    def __init__(self, container: DocumentContainer) -> None:
        self._container = container

    @classmethod
    def open(cls, documents: DocumentDatabase) -> DocumentStateStore:
        return cls(documents.container(STATE_CONTAINER))

    def read(self, pipeline: str, key: str) -> tuple[dict[str, Any], str] | None:
        try:
            stored = self._container.read(key, pipeline)
        except DocumentNotFound:
            return None
        return dict(stored["state"]), str(stored["_etag"])

    def write(self, pipeline: str, key: str, document: dict[str, Any], etag: str | None) -> str:
        body = {"id": key, "pipeline": pipeline, "state": document}
        try:
            if etag is None:
                stored = self._container.create(body)
            else:
                stored = self._container.replace(body, if_match=etag)
        except (DocumentConflict, PreconditionFailed, DocumentNotFound) as error:
            raise StateConflict(f"{pipeline}/{key} changed since it was read") from error
        return str(stored["_etag"])
