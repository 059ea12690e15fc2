"""The embedded document store: JSON documents in SQLite (WAL, `synchronous=FULL`), one file per
database, with Cosmos DB's semantics where the platform relies on them.

- Each write bumps the container's log sequence number (`_lsn`) in the same transaction, so the
  change feed is every live document in the order of its last write (the latest version of
  each, deletes not shown: Cosmos DB's "latest version" mode), from the start or a continuation.
- Etags change on every write; `if_match` makes replace, patch and delete conditional.
- TTL as Cosmos DB has it: off unless the container has a default TTL (-1: on, none by
  default); a document's own `ttl` then wins (-1: never). Expired documents are gone for reads,
  queries and the feed at once, and `purge_expired` deletes them for good.
- A patch, and a batch of operations in one partition, commit whole or not at all.
- Several threads (a connection each) and several processes (the devhost and a CLI) may use
  one database at once: writes take SQLite's write lock up front (`BEGIN IMMEDIATE`). The
  threads of one process queue on a lock of their own first: SQLite's busy handler sleeps up
  to 100 ms a turn even when the lock is already free, which made writers wait for nothing
  (a reservation's p99 was over a second at 10 concurrent callers); other processes still
  meet SQLite's lock, with its 30 s timeout.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from embedded.documents.model import (
    MAX_DOCUMENT_BYTES,
    SYSTEM_PROPERTIES,
    BatchOperation,
    Change,
    ChangePage,
    Condition,
    ContainerSpec,
    DocumentConflict,
    DocumentNotFound,
    InvalidDocument,
    Json,
    Page,
    PatchOperation,
    PreconditionFailed,
    Query,
    check_id,
    check_path,
)
from embedded.documents.sql import check_condition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    name TEXT PRIMARY KEY,
    partition_key_path TEXT NOT NULL,
    default_ttl INTEGER,
    lsn INTEGER NOT NULL DEFAULT 0
);
-- A rowid table: bodies run to hundreds of bytes or more, and appending them in rowid order,
-- with the key in an index beside, costs less than keeping them in a WITHOUT ROWID B-tree.
CREATE TABLE IF NOT EXISTS documents (
    container TEXT NOT NULL,
    pk TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    etag TEXT NOT NULL,
    lsn INTEGER NOT NULL,
    expires_at REAL,
    PRIMARY KEY (container, pk, id)
);
CREATE INDEX IF NOT EXISTS documents_feed ON documents (container, lsn);
CREATE INDEX IF NOT EXISTS documents_expiry ON documents (container, expires_at)
    WHERE expires_at IS NOT NULL;
"""
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_READ_MANY_CHUNK = 500  # ids per statement (SQLite takes 32,766 parameters)
_WRITES = frozenset({"create", "upsert", "replace", "patch"})
_STEP_ERRORS = (DocumentNotFound, DocumentConflict, PreconditionFailed, InvalidDocument)
_OPERATORS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class Lsns:
    """The change feed positions taken for a transaction, handed out in order by calls."""

    def __init__(self, first: int, count: int) -> None:
        self._next = first
        self._end = first + count

    def __call__(self) -> int:
        if self._next >= self._end:
            raise RuntimeError("more writes than change feed positions taken")
        self._next += 1
        return self._next - 1

    def peek(self, ahead: int) -> int:
        """The position `ahead` calls from now will hand out."""
        return self._next + ahead


WRITER_WAIT_S = 30.0  # as SQLite's busy timeout


def _writer_lock(path: Path) -> threading.Lock:
    """The lock this process's writers of the database at `path` queue on."""
    key = str(path.resolve())
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(key, threading.Lock())


_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_GUARD = threading.Lock()


class DocumentStore:
    """One database: a SQLite file under the data dir, opened per thread."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        # An etag is this prefix and the write's change feed position: unique for the
        # container's documents (the position is), and across reopenings of the file.
        self.etag_prefix = secrets.token_hex(6)
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writers = _writer_lock(path)
        self.connection().executescript(_SCHEMA)

    def connection(self) -> sqlite3.Connection:
        found: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if found is None:
            found = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            found.execute("PRAGMA journal_mode=WAL")
            found.execute("PRAGMA synchronous=FULL")
            found.execute("PRAGMA busy_timeout=30000")
            self._local.connection = found
        return found

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A transaction holding the write lock from its start; rolled back on any error."""
        connection = self.connection()
        if not self._writers.acquire(timeout=WRITER_WAIT_S):
            raise sqlite3.OperationalError("database is locked (by this process's writers)")
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:  # also when the COMMIT itself failed (disk full)
                    connection.execute("ROLLBACK")
                raise
        finally:
            self._writers.release()

    def container(self, spec: ContainerSpec) -> Container:
        """The container declared by `spec`, created on first use; a container of that name
        declared otherwise before is refused (a partition key path cannot change)."""
        with self.write() as connection:
            row = connection.execute(
                "SELECT partition_key_path, default_ttl FROM containers WHERE name = ?",
                (spec.name,),
            ).fetchone()
            if row is None:
                connection.execute(
                    "INSERT INTO containers (name, partition_key_path, default_ttl) "
                    "VALUES (?, ?, ?)",
                    (spec.name, spec.partition_key_path, spec.default_ttl),
                )
            elif row[0] != spec.partition_key_path:
                raise InvalidDocument(
                    f"container {spec.name} has the partition key {row[0]}, "
                    f"not {spec.partition_key_path}"
                )
            elif row[1] != spec.default_ttl:
                connection.execute(
                    "UPDATE containers SET default_ttl = ? WHERE name = ?",
                    (spec.default_ttl, spec.name),
                )
        return Container(self, spec)

    def container_names(self) -> list[str]:
        return [r[0] for r in self.connection().execute("SELECT name FROM containers ORDER BY 1")]

    def close(self) -> None:
        found = getattr(self._local, "connection", None)
        if found is not None:
            found.close()
            self._local.connection = None

    def existing(self, name: str) -> Container | None:
        """The container of that name as it was declared, or None if none was; for readers
        that know a container by name only (the devhost's Cosmos DB trigger and bindings)."""
        sql = "SELECT partition_key_path, default_ttl FROM containers WHERE name = ?"
        row = self.connection().execute(sql, (name,)).fetchone()
        return None if row is None else Container(self, ContainerSpec(name, row[0], row[1]))

    def change_feed_end(self, name: str) -> str:
        """The continuation at the current end of a container's change feed: reading from it
        gives only the writes made after now ("start from now")."""
        row = self.connection().execute("SELECT lsn FROM containers WHERE name = ?", (name,))
        found = row.fetchone()
        return str(found[0] if found is not None else 0)


class Container:
    """One container's documents."""

    def __init__(self, store: DocumentStore, spec: ContainerSpec) -> None:
        self.store = store
        self.spec = spec

    # Point operations

    def read(self, id: str, partition_key: Json) -> dict[str, Json]:
        row = (
            self.store.connection()
            .execute(
                f"SELECT body FROM documents WHERE container = ? AND pk = ? AND id = ? AND {_LIVE}",
                (self.spec.name, _key(partition_key), check_id(id), self.store.clock()),
            )
            .fetchone()
        )
        if row is None:
            raise DocumentNotFound(self._where(id, partition_key))
        return dict(json.loads(row[0]))

    def read_many(self, keys: Sequence[tuple[str, Json]]) -> list[dict[str, Json] | None]:
        wanted = [(check_id(id), _key(partition_key)) for id, partition_key in keys]
        found: dict[tuple[str, str], str] = {}
        connection = self.store.connection()
        ids = sorted({id for id, _ in wanted})
        for start in range(0, len(ids), _READ_MANY_CHUNK):
            chunk = ids[start : start + _READ_MANY_CHUNK]
            rows = connection.execute(
                f"SELECT id, pk, body FROM documents WHERE container = ? AND {_LIVE} "
                f"AND id IN ({', '.join('?' * len(chunk))})",
                (self.spec.name, self.store.clock(), *chunk),
            )
            for id, pk, body in rows:
                found[(id, pk)] = body
        return [dict(json.loads(found[key])) if key in found else None for key in wanted]

    def create(self, document: Mapping[str, Json]) -> dict[str, Json]:
        with self.store.write() as connection:
            return self._write(connection, document, self._lsns(connection, 1), mode="create")

    def upsert(self, document: Mapping[str, Json]) -> dict[str, Json]:
        with self.store.write() as connection:
            return self._write(connection, document, self._lsns(connection, 1), mode="upsert")

    def upsert_many(self, documents: Sequence[Mapping[str, Json]]) -> list[dict[str, Json]]:
        """Upsert documents of any partitions in one transaction: all are written or none."""
        if not documents:
            return []
        with self.store.write() as connection:
            lsns = self._lsns(connection, len(documents))
            return [self._write(connection, d, lsns, mode="upsert") for d in documents]

    def replace(self, document: Mapping[str, Json], if_match: str | None = None) -> dict[str, Json]:
        with self.store.write() as connection:
            return self._write(
                connection, document, self._lsns(connection, 1), mode="replace", if_match=if_match
            )

    def delete(self, id: str, partition_key: Json, if_match: str | None = None) -> None:
        with self.store.write() as connection:
            self._delete(connection, id, partition_key, if_match)

    def patch(
        self,
        id: str,
        partition_key: Json,
        operations: Sequence[PatchOperation],
        if_match: str | None = None,
    ) -> dict[str, Json]:
        """Apply every operation to the current document atomically, or none."""
        with self.store.write() as connection:
            lsns = self._lsns(connection, 1)
            return self._patch(connection, id, partition_key, operations, if_match, lsns)

    def batch(
        self, partition_key: Json, operations: Sequence[BatchOperation]
    ) -> list[dict[str, Json] | None]:
        """Run the operations in order in one transaction within one partition: all commit or
        none does (the first failure is raised, naming its position)."""
        if not operations:
            return []
        results: list[dict[str, Json] | None] = []
        with self.store.write() as connection:
            # One change feed position per write, taken for the whole batch at once.
            lsns = self._lsns(connection, sum(1 for step in operations if step.kind in _WRITES))
            index = 0
            while index < len(operations):
                run = _creates_from(operations, index)
                if len(run) > 1:
                    created = self._create_all(connection, partition_key, run, lsns)
                    if created is not None:
                        results.extend(created)
                        index += len(run)
                        continue
                step = operations[index]
                try:
                    results.append(self._step(connection, partition_key, step, lsns))
                except _STEP_ERRORS as error:
                    where = f"batch operation {index} ({step.kind})"
                    raise type(error)(f"{where}: {error}") from error
                index += 1
        return results

    # Queries and the change feed

    def query(self, query: Query, continuation: str | None = None) -> Page:
        """A page of the documents matching the query; `continuation` from the previous page.

        The continuation is the position in the query's order, so pages follow one another
        as long as the matching documents do not change between them (as Cosmos DB's, it is
        not a snapshot)."""
        if query.partition_key is None and not query.cross_partition:
            raise InvalidDocument("a query without a partition key must be cross_partition")
        if not 1 <= query.page_size <= 1000:
            raise InvalidDocument("page_size is 1 to 1000")
        offset = _decode_continuation(continuation)
        clauses = ["container = ?", _LIVE]
        parameters: list[Any] = [self.spec.name, self.store.clock()]
        if query.partition_key is not None:
            clauses.append("pk = ?")
            parameters.append(_key(query.partition_key))
        for condition in query.where:
            clause, values = _condition(condition)
            clauses.append(clause)
            parameters.extend(values)
        order = [
            f"json_extract(body, ?) {'DESC' if descending else 'ASC'}"
            for _, descending in query.order_by
        ]
        parameters.extend(_json_path(path) for path, _ in query.order_by)
        sql = (
            f"SELECT body FROM documents WHERE {' AND '.join(clauses)} "
            f"ORDER BY {', '.join([*order, 'pk', 'id'])} LIMIT ? OFFSET ?"
        )
        rows = (
            self.store.connection()
            .execute(sql, (*parameters, query.page_size + 1, offset))
            .fetchall()
        )
        documents = [dict(json.loads(row[0])) for row in rows[: query.page_size]]
        more = len(rows) > query.page_size
        return Page(documents, _encode_continuation(offset + query.page_size) if more else None)

    def changes(
        self,
        continuation: str | None = None,
        max_items: int = 100,
        partition_key: Json = None,
    ) -> ChangePage:
        """The documents written after `continuation` (None: from the beginning), in the order
        of their last write, each in its latest version; and where to go on from."""
        after = int(continuation) if continuation else 0
        clauses = ["container = ?", "lsn > ?", _LIVE]
        parameters: list[Any] = [self.spec.name, after, self.store.clock()]
        if partition_key is not None:
            clauses.append("pk = ?")
            parameters.append(_key(partition_key))
        rows = (
            self.store.connection()
            .execute(
                f"SELECT body, lsn FROM documents WHERE {' AND '.join(clauses)} "
                "ORDER BY lsn LIMIT ?",
                (*parameters, max(1, max_items)),
            )
            .fetchall()
        )
        changes = [Change(dict(json.loads(body)), lsn) for body, lsn in rows]
        return ChangePage(changes, str(changes[-1].lsn if changes else after))

    def purge_expired(self) -> int:
        """Delete the documents whose TTL has run out; how many."""
        with self.store.write() as connection:
            cursor = connection.execute(
                "DELETE FROM documents WHERE container = ? AND expires_at <= ?",
                (self.spec.name, self.store.clock()),
            )
            return cursor.rowcount

    # Inside a transaction

    def _lsns(self, connection: sqlite3.Connection, count: int) -> Lsns:
        """The next `count` change feed positions of the container, handed out one by one."""
        last: int = connection.execute(
            "UPDATE containers SET lsn = lsn + ? WHERE name = ? RETURNING lsn",
            (count, self.spec.name),
        ).fetchone()[0]
        return Lsns(last - count + 1, count)

    def _create_all(
        self,
        connection: sqlite3.Connection,
        partition_key: Json,
        run: Sequence[BatchOperation],
        lsns: Lsns,
    ) -> list[dict[str, Json] | None] | None:
        """Create a run of documents with one INSERT statement (one call into SQLite rather
        than one per document: a writer thread gives up the GIL once, not once a document);
        None, with nothing written, when one of them is not plain (a bad document, an id
        taken), for the steps one by one to say which."""
        pk = _key(partition_key)
        now = self.store.clock()
        rows: list[Any] = []
        bodies: list[dict[str, Json] | None] = []
        positions: list[int] = []
        for step in run:
            document = step.document
            if not isinstance(document, Mapping):
                return None
            try:
                id = check_id(document.get("id"))
                if self.spec.partition_key_of(document) != partition_key:
                    return None
                positions.append(lsns.peek(len(positions)))
                body, text = self._body(document, id, positions[-1], now)
                rows.extend((self.spec.name, pk, id, text, body["_etag"], positions[-1]))
                rows.append(self._expiry(body, now))
            except InvalidDocument:
                return None
            bodies.append(body)
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(run))
        try:
            connection.execute(
                "INSERT INTO documents (container, pk, id, body, etag, lsn, expires_at) "
                f"VALUES {values}",
                rows,
            )
        except sqlite3.IntegrityError:  # an id is taken: the statement wrote nothing
            return None
        for _ in positions:
            lsns()
        return bodies

    def _step(
        self, connection: sqlite3.Connection, partition_key: Json, step: BatchOperation, lsns: Lsns
    ) -> dict[str, Json] | None:
        if step.kind in ("create", "upsert", "replace"):
            if step.document is None:
                raise InvalidDocument("needs a document")
            if self.spec.partition_key_of(step.document) != partition_key:
                raise InvalidDocument("its partition key is not the batch's")
            return self._write(
                connection, step.document, lsns, mode=step.kind, if_match=step.if_match
            )
        if step.id is None:
            raise InvalidDocument("needs an id")
        if step.kind == "delete":
            self._delete(connection, step.id, partition_key, step.if_match)
            return None
        if step.kind == "patch":
            return self._patch(connection, step.id, partition_key, step.patch, step.if_match, lsns)
        return self._current(connection, step.id, partition_key)[0]

    def _write(
        self,
        connection: sqlite3.Connection,
        document: Mapping[str, Json],
        lsns: Lsns,
        *,
        mode: str,
        if_match: str | None = None,
    ) -> dict[str, Json]:
        if not isinstance(document, Mapping):
            raise InvalidDocument("a document is a JSON object")
        id = check_id(document.get("id"))
        partition_key = self.spec.partition_key_of(document)
        pk = _key(partition_key)
        lsn = lsns()
        if mode == "upsert":  # whatever is there is replaced: nothing to read first
            return self._store(connection, document, id, pk, lsn)
        if mode == "create":  # the primary key refuses a taken id: read only then
            try:
                return self._store(connection, document, id, pk, lsn, insert_only=True)
            except sqlite3.IntegrityError:
                if self._find(connection, id, pk) is not None:
                    raise DocumentConflict(f"{self._where(id, partition_key)} exists") from None
                return self._store(connection, document, id, pk, lsn)  # over an expired one
        existing = self._find(connection, id, pk)
        if existing is None:
            raise DocumentNotFound(self._where(id, partition_key))
        _check_etag(existing[1], if_match, self._where(id, partition_key))
        return self._store(connection, document, id, pk, lsn)

    def _store(
        self,
        connection: sqlite3.Connection,
        document: Mapping[str, Json],
        id: str,
        pk: str,
        lsn: int,
        *,
        insert_only: bool = False,
    ) -> dict[str, Json]:
        now = self.store.clock()
        body, text = self._body(document, id, lsn, now)
        connection.execute(
            ("INSERT" if insert_only else "INSERT OR REPLACE")
            + " INTO documents (container, pk, id, body, etag, lsn, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.spec.name, pk, id, text, body["_etag"], lsn, self._expiry(body, now)),
        )
        return body

    def _body(
        self, document: Mapping[str, Json], id: str, lsn: int, now: float
    ) -> tuple[dict[str, Json], str]:
        """The document as stored, with its system properties, and its JSON."""
        body = dict(document)
        for key in body.keys() & SYSTEM_PROPERTIES:
            del body[key]
        body["_etag"] = f'"{self.store.etag_prefix}-{lsn:x}"'
        body["_ts"] = int(now)
        body["_lsn"] = lsn
        text = _dumps_body(body)
        if len(text) > MAX_DOCUMENT_BYTES // 4 and (
            len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES
        ):
            raise InvalidDocument(
                f"the document {id!r} is over {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB"
            )
        return body, text

    def _delete(
        self, connection: sqlite3.Connection, id: str, partition_key: Json, if_match: str | None
    ) -> None:
        _, etag = self._current(connection, id, partition_key)
        _check_etag(etag, if_match, self._where(id, partition_key))
        connection.execute(
            "DELETE FROM documents WHERE container = ? AND pk = ? AND id = ?",
            (self.spec.name, _key(partition_key), id),
        )

    def _patch(
        self,
        connection: sqlite3.Connection,
        id: str,
        partition_key: Json,
        operations: Sequence[PatchOperation],
        if_match: str | None,
        lsns: Lsns,
    ) -> dict[str, Json]:
        if not operations:
            raise InvalidDocument("a patch needs at least one operation")
        current, etag = self._current(connection, id, partition_key)
        _check_etag(etag, if_match, self._where(id, partition_key))
        patched = copy.deepcopy(current)
        for operation in operations:
            _apply(patched, operation)
        if patched.get("id") != id or self.spec.partition_key_of(patched) != partition_key:
            raise InvalidDocument("a patch cannot change the id or the partition key")
        return self._store(connection, patched, id, _key(partition_key), lsns())

    def _current(
        self, connection: sqlite3.Connection, id: str, partition_key: Json
    ) -> tuple[dict[str, Json], str]:
        found = self._find(connection, check_id(id), _key(partition_key))
        if found is None:
            raise DocumentNotFound(self._where(id, partition_key))
        return found

    def _find(
        self, connection: sqlite3.Connection, id: str, pk: str
    ) -> tuple[dict[str, Json], str] | None:
        row = connection.execute(
            f"SELECT body, etag FROM documents WHERE container = ? AND pk = ? AND id = ? "
            f"AND {_LIVE}",
            (self.spec.name, pk, id, self.store.clock()),
        ).fetchone()
        return None if row is None else (dict(json.loads(row[0])), row[1])

    def _expiry(self, body: Mapping[str, Json], now: float) -> float | None:
        default = self.spec.default_ttl
        if default is None:
            return None  # TTL is off for the container: documents never expire
        ttl = body.get("ttl", default)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl == 0 or ttl < -1:
            raise InvalidDocument("ttl is -1 (never) or a positive number of seconds")
        return None if ttl == -1 else now + ttl

    def _where(self, id: str, partition_key: Json) -> str:
        return f"{self.spec.name}/{id!r} (partition key {partition_key!r})"


def _creates_from(operations: Sequence[BatchOperation], start: int) -> Sequence[BatchOperation]:
    """The run of creates that starts at `start` (empty when that step is something else)."""
    end = start
    while end < len(operations) and operations[end].kind == "create":
        end += 1
    return operations[start:end]


def _key(partition_key: Json) -> str:
    if isinstance(partition_key, Mapping | list):
        raise InvalidDocument("a partition key value is a string, number, bool or null")
    return _dumps(partition_key)


_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


_FAST_ENCODER = msgspec.json.Encoder()
_FAST_DECODER = msgspec.json.Decoder()


def _dumps_body(value: dict[str, Json]) -> str:
    """A document's JSON, by msgspec (a tenth of the time), when it reads back as the same
    value; otherwise by `_dumps`, which refuses what is not JSON. (msgspec would write NaN as
    `null`, a set or a tuple as an array, bytes as base64 text: none of those read back equal,
    so each goes to `_dumps`, as do lone surrogates and integers past 64 bits.)"""
    try:
        encoded = _FAST_ENCODER.encode(value)
        if _FAST_DECODER.decode(encoded) == value:
            return encoded.decode("utf-8")
    except (msgspec.MsgspecError, TypeError, ValueError, OverflowError, RecursionError):
        pass
    return _dumps(value)


def _dumps(value: Json) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidDocument(f"not JSON: {error}") from error


def _check_etag(current: str, if_match: str | None, where: str) -> None:
    if if_match is not None and if_match != current:
        raise PreconditionFailed(f"{where} changed: its etag is no longer {if_match}")


def _json_path(path: str) -> str:
    parts = check_path(path)
    return "$" + "".join("." + json.dumps(part) for part in parts)


def _condition(condition: Condition) -> tuple[str, list[Any]]:
    """The SQL of one term, with Cosmos DB's typing: a comparison with a value of another type
    (or with a missing field) is undefined, so the document does not match."""
    check_condition(condition)
    path = _json_path(condition.path)
    value = condition.value
    if condition.op == "exists":
        return "json_type(body, ?) IS NOT NULL", [path]
    if condition.op == "in":
        marks = ", ".join("?" for _ in value)
        return f"json_extract(body, ?) IN ({marks})", [path, *value]
    if condition.op == "starts_with":
        return (
            "json_type(body, ?) = 'text' AND substr(json_extract(body, ?), 1, ?) = ?",
            [path, path, len(value), value],
        )
    if value is None or isinstance(value, bool):
        kind = "null" if value is None else ("true" if value else "false")
        types = "('null')" if value is None else "('true', 'false')"
        if condition.op == "=":
            return "json_type(body, ?) = ?", [path, kind]
        return f"json_type(body, ?) IN {types} AND json_type(body, ?) != ?", [path, path, kind]
    types = "('text')" if isinstance(value, str) else "('integer', 'real')"
    return (
        f"json_type(body, ?) IN {types} AND json_extract(body, ?) {_OPERATORS[condition.op]} ?",
        [path, path, value],
    )


def _encode_continuation(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_continuation(continuation: str | None) -> int:
    if continuation is None:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(continuation.encode()))["offset"]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidDocument("not a continuation this store gave") from error
    if not isinstance(offset, int) or offset < 0:
        raise InvalidDocument("not a continuation this store gave")
    return offset


def _apply(document: dict[str, Json], operation: PatchOperation) -> None:
    parts = check_path(operation.path)
    parent: Any = document
    for part in parts[:-1]:
        if not isinstance(parent, dict) or part not in parent:
            raise InvalidDocument(f"patch {operation.path}: no {part!r} to go through")
        parent = parent[part]
    if not isinstance(parent, dict):
        raise InvalidDocument(f"patch {operation.path}: its parent is not an object")
    last = parts[-1]
    if operation.op in ("set", "add"):
        parent[last] = copy.deepcopy(operation.value)
    elif operation.op == "remove":
        if last not in parent:
            raise InvalidDocument(f"patch {operation.path}: nothing to remove")
        del parent[last]
    elif operation.op == "incr":
        current = parent.get(last, 0)
        step = operation.value
        numbers = (int, float)
        if isinstance(current, bool) or not isinstance(current, numbers):
            raise InvalidDocument(f"patch {operation.path}: incr needs a number there")
        if isinstance(step, bool) or not isinstance(step, numbers):
            raise InvalidDocument(f"patch {operation.path}: incr takes a number")
        parent[last] = current + step
    else:
        raise InvalidDocument(f"unknown patch operation {operation.op!r}")


def database_path(data_dir: Path, database: str) -> Path:
    """Where a database of the embedded store lives: `<data dir>/documents/<database>.sqlite3`
    (the platform, the devhost's Cosmos DB bindings and `python -m devhost documents` agree)."""
    return data_dir / "documents" / f"{database}.sqlite3"
