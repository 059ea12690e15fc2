"""The document store the settings name: Cosmos DB (one client per process) or the embedded
SQLite store."""

from __future__ import annotations

from embedded.documents.store import DocumentStore
from shared.config import Adapter, DocumentsSettings
from shared.documents.port import DocumentDatabase


def open_documents(settings: DocumentsSettings) -> DocumentDatabase:
    if settings.adapter is Adapter.AZURE:
        from shared.documents.cosmos import CosmosDatabase

        assert settings.endpoint is not None  # the settings checked it
        return CosmosDatabase(settings.endpoint, settings.database)
    assert settings.embedded_path is not None
    return DocumentStore(settings.embedded_path)
