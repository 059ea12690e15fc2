"""Leases of the Cosmos DB trigger: documents in the lease container that hold where the trigger
is in the monitored container's change feed.

Modelled on what the change feed processor of the Cosmos DB SDK stores for the Functions
extension v4: one lease per processor (the `leaseContainerPrefix`), monitored container and
feed range, with the id `{prefix}{account}_{database}_{container}..{range}` (Azure puts the
database's and container's resource ids where the embedded store has only names). The
document holds `LeaseToken` (the feed range: the embedded feed is one range, "0"),
`ContinuationToken` (where to read on from; null: the beginning), `Owner` (who processes it;
null once released), `timestamp` (of the last acquire or checkpoint) and `properties`.

Every write is conditional on the lease's etag, so a lease changed meanwhile by anyone else
(say an operator deleting it to replay the feed) is noticed as `LeaseLost`, never overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from embedded.documents.model import (
    DocumentConflict,
    DocumentNotFound,
    InvalidDocument,
    PreconditionFailed,
)
from embedded.documents.store import Container

log = logging.getLogger("devhost.cosmosdb")

FEED_RANGE = "0"
# The partition key paths the SDK supports for a lease container.
LEASE_PARTITION_KEY_PATHS = ("/id", "/partitionKey")
_ACQUIRE_ATTEMPTS = 5


class LeaseLost(Exception):
    """The lease changed or vanished since this trigger last wrote it."""


class LeaseContainerError(ValueError):
    """The lease container cannot hold leases; the message says why."""


def lease_id(prefix: str, account: str, database: str, container: str) -> str:
    """The id of the lease a trigger keeps on a monitored container."""
    return f"{prefix}{account}_{database}_{container}..{FEED_RANGE}"


def check_lease_container(container: Container) -> None:
    """Refuse a lease container partitioned other than as the SDK requires (/id or
    /partitionKey), as the change feed processor does."""
    path = container.spec.partition_key_path
    if path not in LEASE_PARTITION_KEY_PATHS:
        raise LeaseContainerError(
            f"the lease container {container.spec.name!r} is partitioned by {path}; a lease "
            "container must be partitioned by /id (or /partitionKey)"
        )


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Lease:
    """A lease document as last read or written."""

    document: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.document["id"])

    @property
    def continuation(self) -> str | None:
        return _check_continuation(self)

    @property
    def owner(self) -> str | None:
        owner = self.document.get("Owner")
        return owner if isinstance(owner, str) else None

    @property
    def etag(self) -> str:
        return str(self.document.get("_etag", ""))


def _check_continuation(lease: Lease) -> str | None:
    """A lease's continuation, refused (before anything runs) when it is not one at all."""
    value = lease.document.get("ContinuationToken")
    if value is not None and not isinstance(value, str):
        raise InvalidDocument(
            f"lease {lease.id!r}: ContinuationToken must be a string or null, not {value!r}; "
            "delete the lease document to start again"
        )
    return value


class LeaseKeeper:
    """Acquires, checkpoints and releases one lease in the lease container."""

    def __init__(self, leases: Container, id: str, owner: str, properties: Mapping[str, str]):
        check_lease_container(leases)
        self.leases = leases
        self.id = id
        self.owner = owner
        self._properties = dict(properties)

    def read(self) -> Lease | None:
        try:
            return Lease(self.leases.read(self.id, self.id))
        except DocumentNotFound:
            return None

    def acquire(self, initial: Callable[[], str | None]) -> Lease:
        """Take the lease, creating it at `initial()` (a continuation; None: the beginning) when
        there is none yet. The devhost holds its data dir alone, so a lease owned by anyone
        else was left by an earlier devhost that is gone: it is taken over at once."""
        for _ in range(_ACQUIRE_ATTEMPTS):
            current = self.read()
            if current is None:
                document = self._document(initial(), owner=self.owner)
                try:
                    return Lease(self.leases.create(document))
                except DocumentConflict:
                    continue  # created meanwhile: take that one
            _check_continuation(current)
            if current.owner not in (None, self.owner):
                log.info("lease %s: taking it over from %s", self.id, current.owner)
            try:
                return self._replace(current, Owner=self.owner, properties=self._properties)
            except LeaseLost:
                continue
        raise LeaseLost(f"lease {self.id!r} kept changing while being acquired")

    def checkpoint(self, lease: Lease, continuation: str) -> Lease:
        """Record that the changes up to `continuation` are done."""
        return self._replace(lease, ContinuationToken=continuation)

    def release(self, lease: Lease) -> None:
        """Give the lease up (Owner null), as the processor does when it stops."""
        self._replace(lease, Owner=None)

    def _document(self, continuation: str | None, *, owner: str | None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.id,
            "LeaseToken": FEED_RANGE,
            "ContinuationToken": continuation,
            "Owner": owner,
            "timestamp": _now(),
            "properties": self._properties,
        }
        if self.leases.spec.partition_key_path == "/partitionKey":
            document["partitionKey"] = self.id
        return document

    def _replace(self, lease: Lease, **changes: Any) -> Lease:
        document = {**lease.document, **changes, "timestamp": _now()}
        try:
            return Lease(self.leases.replace(document, if_match=lease.etag))
        except (PreconditionFailed, DocumentNotFound) as error:
            raise LeaseLost(f"lease {self.id!r} changed meanwhile: {error}") from error
