"""The document store's vocabulary, shared by every adapter: containers, errors, patch operations,
queries, and the checks Cosmos DB makes on ids and sizes.

A container holds JSON documents, each with an `id` unique within its partition key value (the
value at the container's partition key path, `/accountId` say). Every stored document carries
Cosmos DB's system properties: `_etag` (changes on every write), `_ts` (seconds since the epoch
of the last write) and, where it expires, `ttl` (seconds after `_ts`; -1 never).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

MAX_ID_BYTES = 1023  # Cosmos DB's limit on an id
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024  # and on a document
FORBIDDEN_ID_CHARACTERS = frozenset("/\\?#")
SYSTEM_PROPERTIES = ("_etag", "_ts", "_rid", "_self", "_attachments", "_lsn")

Json = Any


class DocumentStoreError(Exception):
    """Base of the store's errors; each kind below is a distinct type callers can catch."""


class InvalidDocument(DocumentStoreError, ValueError):
    """A document, id, partition key, query or patch the store refuses; the message names it."""


class DocumentNotFound(DocumentStoreError, LookupError):
    """No document with that id in that partition (or it expired)."""


class DocumentConflict(DocumentStoreError):
    """A create found a document with the same id in the partition."""


class PreconditionFailed(DocumentStoreError):
    """An `if_match` etag is not the document's current one: it changed since it was read."""


class Throttled(DocumentStoreError):
    """The service asked to slow down and its retries ran out; `retry_after_s` says how long."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ContainerSpec:
    """A container, declared once: its name, partition key path and default TTL (seconds; None:
    documents never expire unless they say so; -1: expiry on, none by default)."""

    name: str
    partition_key_path: str
    default_ttl: int | None = None

    def __post_init__(self) -> None:
        path = self.partition_key_path
        if not path.startswith("/") or len(path) < 2 or "//" in path or path.endswith("/"):
            raise InvalidDocument(f"container {self.name}: a partition key path looks like /field")
        if self.default_ttl is not None and (self.default_ttl == 0 or self.default_ttl < -1):
            raise InvalidDocument(f"container {self.name}: default TTL is -1 or positive seconds")

    @property
    def key_parts(self) -> tuple[str, ...]:
        return tuple(self.partition_key_path.strip("/").split("/"))

    def partition_key_of(self, document: Mapping[str, Json]) -> Json:
        """The document's partition key value (None when it has none, as Cosmos allows)."""
        value: Json = document
        for part in self.key_parts:
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        if isinstance(value, Mapping | list):
            raise InvalidDocument(f"{self.partition_key_path} must be a string, number or bool")
        return value


@dataclass(frozen=True)
class PatchOperation:
    """One patch step on a path (`/a/b`): `set` (or `add`) a value, `incr` a number by a
    value, `remove` the field. A patch applies all its steps atomically, or none."""

    op: Literal["set", "add", "incr", "remove"]
    path: str
    value: Json = None


Comparison = Literal["=", "!=", "<", "<=", ">", ">=", "in", "exists", "starts_with"]


@dataclass(frozen=True)
class Condition:
    """One filter term: the value at `path` (`/status`, `/a/b`) compared with `value`."""

    path: str
    op: Comparison
    value: Json = None


@dataclass(frozen=True)
class Query:
    """What a query asks for: documents matching every condition, in this order (paths, then
    `desc`), a page at a time. `partition_key` keeps it inside one partition (the cheap query);
    without it the query crosses partitions."""

    where: Sequence[Condition] = ()
    order_by: Sequence[tuple[str, bool]] = ()  # (path, descending)
    partition_key: Json = None
    cross_partition: bool = False
    page_size: int = 100


@dataclass(frozen=True)
class Page:
    """One page of a query: the documents, and the continuation for the next (None: the last)."""

    documents: list[dict[str, Json]]
    continuation: str | None = None


@dataclass(frozen=True)
class BatchOperation:
    """One step of a transactional batch: create, upsert, replace, delete, read or patch."""

    kind: Literal["create", "upsert", "replace", "delete", "read", "patch"]
    id: str | None = None
    document: Mapping[str, Json] | None = None
    if_match: str | None = None
    patch: Sequence[PatchOperation] = field(default_factory=tuple)


@dataclass(frozen=True)
class Change:
    """A document as the change feed shows it: its latest version, with the feed's position."""

    document: dict[str, Json]
    lsn: int


@dataclass(frozen=True)
class ChangePage:
    """Changes in order, and the continuation to read the ones after them."""

    changes: list[Change]
    continuation: str


def check_id(value: Json) -> str:
    """An id Cosmos DB would take, or InvalidDocument naming the rule it breaks."""
    if not isinstance(value, str) or value == "":
        raise InvalidDocument("a document needs an `id`: a non-empty string")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise InvalidDocument(f"the id {value[:40]!r}… is over {MAX_ID_BYTES} bytes")
    found = FORBIDDEN_ID_CHARACTERS.intersection(value)
    if found:
        raise InvalidDocument(f"the id {value!r} contains {''.join(sorted(found))!r}")
    return value


def check_path(path: str) -> tuple[str, ...]:
    """The parts of a document path (`/a/b` -> ("a", "b")), or InvalidDocument."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) < 2:
        raise InvalidDocument(f"a path looks like /field or /a/b, not {path!r}")
    parts = tuple(path[1:].split("/"))
    if any(part == "" for part in parts):
        raise InvalidDocument(f"a path has no empty segment: {path!r}")
    return parts
