"""Blob receipts in SQLite: each blob version triggers a function once, across restarts.

Blob names are kept as given. A local file's name that is not UTF-8 (Python decodes it with
surrogate escapes) cannot be SQLite text: it is stored as its bytes, so it can still be
poisoned, once, and found again after a restart.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

DEFAULT_MAX_ATTEMPTS = 5  # Azure's maxDequeueCount for the blob trigger's queue

_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    function TEXT NOT NULL,
    blob TEXT NOT NULL,
    etag TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'poison')),
    attempts INTEGER NOT NULL,
    last_error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (function, blob, etag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS poison (
    function TEXT NOT NULL,
    blob TEXT NOT NULL,
    etag TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    poisoned_at TEXT NOT NULL,
    PRIMARY KEY (function, blob, etag)
) WITHOUT ROWID;
"""

STOPPED_MID_ATTEMPT = "the host stopped during the last attempt"


class ReceiptStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    POISON = "poison"


@dataclass(frozen=True)
class Receipt:
    """Where a function stands with one blob version. `attempts` counts begun attempts."""

    function: str
    blob: str
    etag: str
    status: ReceiptStatus
    attempts: int
    last_error: str | None = None
    just_poisoned: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.function, self.blob, self.etag)


@dataclass(frozen=True)
class PoisonRecord:
    function: str
    blob: str
    etag: str
    attempts: int
    error: str
    poisoned_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _stored(blob: str) -> str | bytes:
    try:
        blob.encode("utf-8")
    except UnicodeEncodeError:
        return blob.encode("utf-8", "surrogateescape")
    return blob


def _name(stored: str | bytes) -> str:
    return stored if isinstance(stored, str) else stored.decode("utf-8", "surrogateescape")


class BlobReceipts:
    """The receipt and poison tables, safe to use from several threads."""

    def __init__(self, path: Path, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.path = path
        self.max_attempts = max_attempts
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, function: str, blob: str, etag: str) -> Receipt | None:
        with self._lock:
            return self._get(function, blob, etag)

    def _get(self, function: str, blob: str, etag: str) -> Receipt | None:
        row = self._db.execute(
            "SELECT status, attempts, last_error FROM receipts"
            " WHERE function = ? AND blob = ? AND etag = ?",
            (function, _stored(blob), etag),
        ).fetchone()
        if row is None:
            return None
        return Receipt(function, blob, etag, ReceiptStatus(row[0]), row[1], row[2])

    def settled(self) -> set[tuple[str, str, str]]:
        """Keys (function, blob, etag) that are done or poisoned: nothing more to do."""
        with self._lock:
            rows = self._db.execute(
                "SELECT function, blob, etag FROM receipts WHERE status != 'pending'"
            ).fetchall()
        return {(row[0], _name(row[1]), row[2]) for row in rows}

    def begin(self, function: str, blob: str, etag: str) -> Receipt:
        """Count an attempt before making it, so a crash mid-attempt still counts.

        Returns a pending receipt whose `attempts` is this attempt's number, or a settled
        one if there is nothing to do. Attempts used up (the host died during the last one)
        poison the blob now, with `just_poisoned` set.
        """
        with self._transaction() as db:
            receipt = self._get(function, blob, etag)
            if receipt is not None and receipt.status is not ReceiptStatus.PENDING:
                return receipt
            if receipt is not None and receipt.attempts >= self.max_attempts:
                error = STOPPED_MID_ATTEMPT
                if receipt.last_error:
                    error += f"; the attempt before failed with {receipt.last_error}"
                return self._poison(db, receipt, error)
            attempts = 1 if receipt is None else receipt.attempts + 1
            db.execute(
                "INSERT INTO receipts (function, blob, etag, status, attempts, updated_at)"
                " VALUES (?, ?, ?, 'pending', ?, ?)"
                " ON CONFLICT (function, blob, etag) DO UPDATE"
                " SET attempts = excluded.attempts, updated_at = excluded.updated_at",
                (function, _stored(blob), etag, attempts, _now()),
            )
            last_error = None if receipt is None else receipt.last_error
            return Receipt(function, blob, etag, ReceiptStatus.PENDING, attempts, last_error)

    def undo_begin(self, function: str, blob: str, etag: str) -> None:
        """Uncount an attempt that was never made (the blob changed, or the host is stopping)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE receipts SET attempts = attempts - 1, updated_at = ?"
                " WHERE function = ? AND blob = ? AND etag = ? AND status = 'pending'"
                " AND attempts > 0",
                (_now(), function, _stored(blob), etag),
            )
            db.execute(
                "DELETE FROM receipts WHERE function = ? AND blob = ? AND etag = ?"
                " AND status = 'pending' AND attempts = 0 AND last_error IS NULL",
                (function, _stored(blob), etag),
            )

    def complete(self, function: str, blob: str, etag: str) -> None:
        """The function succeeded on this version: never trigger it again."""
        with self._transaction() as db:
            db.execute(
                "UPDATE receipts SET status = 'done', updated_at = ?"
                " WHERE function = ? AND blob = ? AND etag = ?",
                (_now(), function, _stored(blob), etag),
            )

    def fail(self, function: str, blob: str, etag: str, error: str) -> Receipt:
        """Record a failed attempt; poison the blob once its attempts are used up."""
        with self._transaction() as db:
            db.execute(
                "UPDATE receipts SET last_error = ?, updated_at = ?"
                " WHERE function = ? AND blob = ? AND etag = ?",
                (error, _now(), function, _stored(blob), etag),
            )
            receipt = self._get(function, blob, etag)
            if receipt is None:
                raise KeyError(f"no receipt for {function} on {blob} ({etag}); call begin first")
            if receipt.status is ReceiptStatus.PENDING and receipt.attempts >= self.max_attempts:
                return self._poison(db, receipt, error)
            return receipt

    def poison_now(self, function: str, blob: str, etag: str, error: str) -> Receipt:
        """Poison a blob whose failure no retry can fix (e.g. it cannot be decoded)."""
        with self._transaction() as db:
            receipt = self._get(function, blob, etag) or Receipt(
                function, blob, etag, ReceiptStatus.PENDING, 0
            )
            if receipt.status is not ReceiptStatus.PENDING:
                return receipt
            if receipt.attempts == 0:
                db.execute(
                    "INSERT INTO receipts (function, blob, etag, status, attempts, updated_at)"
                    " VALUES (?, ?, ?, 'pending', 0, ?)",
                    (function, _stored(blob), etag, _now()),
                )
            return self._poison(db, receipt, error)

    def _poison(self, db: sqlite3.Connection, receipt: Receipt, error: str) -> Receipt:
        now = _now()
        key = (receipt.function, _stored(receipt.blob), receipt.etag)
        db.execute(
            "UPDATE receipts SET status = 'poison', last_error = ?, updated_at = ?"
            " WHERE function = ? AND blob = ? AND etag = ?",
            (error, now, *key),
        )
        db.execute(
            "INSERT OR REPLACE INTO poison (function, blob, etag, attempts, error, poisoned_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (*key, receipt.attempts, error, now),
        )
        return Receipt(
            receipt.function,
            receipt.blob,
            receipt.etag,
            ReceiptStatus.POISON,
            receipt.attempts,
            error,
            just_poisoned=True,
        )

    def poisoned(self) -> list[PoisonRecord]:
        """Every poisoned blob version, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT function, blob, etag, attempts, error, poisoned_at FROM poison"
                " ORDER BY poisoned_at, function, blob"
            ).fetchall()
        return [PoisonRecord(row[0], _name(row[1]), *row[2:]) for row in rows]
