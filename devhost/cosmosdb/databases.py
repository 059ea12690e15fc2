"""The embedded store's databases under the data dir, each opened once per devhost.

A database is the file the platform and `python -m devhost documents` use too (`database_path`);
its containers are those recorded in it. Opening never creates a database or a container
unless asked to, so a missing one is reported, not silently made.
"""

from __future__ import annotations

import threading
from pathlib import Path

from embedded.documents.model import ContainerSpec
from embedded.documents.store import Container, DocumentStore, database_path


class ContainerMissing(LookupError):
    """The container (or its database) does not exist; the message says which and how to have
    it created, in Azure's words."""


class Databases:
    """Opens `<data dir>/documents/<database>.sqlite3` stores, once each, for any thread."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._stores: dict[str, DocumentStore] = {}
        self._lock = threading.Lock()

    def path(self, database: str) -> Path:
        return database_path(self._data_dir, database)

    def store(self, database: str) -> DocumentStore | None:
        """The database's store, or None if its file does not exist."""
        with self._lock:
            if database not in self._stores and not self.path(database).exists():
                return None
        return self.created(database)

    def created(self, database: str) -> DocumentStore:
        """The database's store, its file created if missing."""
        with self._lock:
            store = self._stores.get(database)
            if store is None:
                store = self._stores[database] = DocumentStore(self.path(database))
            return store

    def existing(self, database: str, container: str) -> Container | None:
        """The container as it was created, or None if it (or its database) does not exist."""
        store = self.store(database)
        return None if store is None else store.existing(container)

    def container(self, database: str, spec: ContainerSpec, *, create: bool) -> Container:
        """The container; created with `spec` when missing and `create`, else ContainerMissing.
        An existing container keeps its own partition key path, as Cosmos DB's does."""
        found = self.existing(database, spec.name)
        if found is not None:
            return found
        if not create:
            raise ContainerMissing(
                f"the container {spec.name!r} (in database {database!r}) does not exist"
            )
        store = self.created(database)
        return store.existing(spec.name) or store.container(spec)
