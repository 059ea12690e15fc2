"""Pipeline state (watermarks, gold inputs) behind a small document port; SQLite adapter.

Each document has an etag and every write names the etag it read, as Cosmos DB's `if_match`
does, so two runs of one table cannot both move its watermark.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol


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


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A shared, autocommit connection in WAL mode that waits out other writers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=10000")
    return connection


class SqliteStateStore:
    """The embedded adapter: one SQLite file under PLATFORM_DATA_DIR, WAL mode."""

    def __init__(self, path: Path) -> None:
        self._connection = open_sqlite(path)
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS documents (pipeline TEXT, key TEXT, body TEXT NOT NULL,"
            " etag TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (pipeline, key))"
        )
        self._lock = threading.Lock()

    def read(self, pipeline: str, key: str) -> tuple[dict[str, Any], str] | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT body, etag FROM documents WHERE pipeline = ? AND key = ?", (pipeline, key)
            ).fetchone()
        if row is None:
            return None
        return json.loads(row[0]), str(row[1])

    def write(self, pipeline: str, key: str, document: dict[str, Any], etag: str | None) -> str:
        new_etag = uuid.uuid4().hex
        body = json.dumps(document, sort_keys=True)
        with self._lock:
            if etag is None:
                cursor = self._connection.execute(
                    "INSERT OR IGNORE INTO documents VALUES (?, ?, ?, ?, ?)",
                    (pipeline, key, body, new_etag, time.time()),
                )
            else:
                cursor = self._connection.execute(
                    "UPDATE documents SET body = ?, etag = ?, updated_at = ?"
                    " WHERE pipeline = ? AND key = ? AND etag = ?",
                    (body, new_etag, time.time(), pipeline, key, etag),
                )
        if cursor.rowcount != 1:
            raise StateConflict(f"{pipeline}/{key} changed since it was read")
        return new_etag

    def close(self) -> None:
        with self._lock:
            self._connection.close()
