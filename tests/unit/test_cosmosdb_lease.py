"""Leases of the Cosmos DB trigger as documents: created, taken over, moved, lost, released."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.cosmosdb.lease import (
    LeaseContainerError,
    LeaseKeeper,
    LeaseLost,
    check_lease_container,
    lease_id,
)
from embedded.documents.model import ContainerSpec, InvalidDocument
from embedded.documents.store import Container, DocumentStore

pytestmark = pytest.mark.unit

ID = lease_id("audit-", "localhost", "db", "items")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DocumentStore]:
    opened = DocumentStore(tmp_path / "db.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
def leases(store: DocumentStore) -> Container:
    return store.container(ContainerSpec("leases", "/id"))


def _keeper(leases: Container, owner: str = "me") -> LeaseKeeper:
    return LeaseKeeper(leases, ID, owner, {"function": "watch"})


def test_the_lease_id_is_the_change_feed_processors() -> None:
    assert ID == "audit-localhost_db_items..0"


def test_a_new_lease_starts_where_told_and_records_its_owner(leases: Container) -> None:
    lease = _keeper(leases).acquire(lambda: "17")
    stored = leases.read(ID, ID)
    assert lease.continuation == "17" and lease.owner == "me"
    assert stored["ContinuationToken"] == "17"
    assert stored["LeaseToken"] == "0"
    assert stored["Owner"] == "me"
    assert stored["properties"] == {"function": "watch"}
    assert stored["timestamp"].endswith("Z")


def test_an_existing_lease_keeps_its_continuation_and_is_taken_over(leases: Container) -> None:
    first = _keeper(leases, "old-devhost")
    first.checkpoint(first.acquire(lambda: None), "5")
    called: list[bool] = []

    def initial() -> str:
        called.append(True)
        return "99"

    lease = _keeper(leases, "new-devhost").acquire(initial)
    assert lease.continuation == "5" and lease.owner == "new-devhost"
    assert not called  # the start options apply only to a new lease


def test_checkpoints_move_the_lease_and_release_clears_the_owner(leases: Container) -> None:
    keeper = _keeper(leases)
    lease = keeper.checkpoint(keeper.acquire(lambda: None), "3")
    lease = keeper.checkpoint(lease, "8")
    assert leases.read(ID, ID)["ContinuationToken"] == "8"
    keeper.release(lease)
    assert leases.read(ID, ID)["Owner"] is None
    assert leases.read(ID, ID)["ContinuationToken"] == "8"


def test_a_lease_changed_or_deleted_meanwhile_is_lost_not_overwritten(leases: Container) -> None:
    keeper = _keeper(leases)
    lease = keeper.acquire(lambda: None)
    leases.upsert({**leases.read(ID, ID), "ContinuationToken": "0"})  # an operator resets it
    with pytest.raises(LeaseLost, match="changed meanwhile"):
        keeper.checkpoint(lease, "10")
    assert leases.read(ID, ID)["ContinuationToken"] == "0"
    lease = keeper.acquire(lambda: None)
    leases.delete(ID, ID)
    with pytest.raises(LeaseLost):
        keeper.checkpoint(lease, "10")


def test_a_lease_whose_continuation_is_not_text_is_refused(leases: Container) -> None:
    leases.upsert({"id": ID, "ContinuationToken": 12, "Owner": None})
    with pytest.raises(InvalidDocument, match="ContinuationToken must be a string or null"):
        _keeper(leases).acquire(lambda: None)


def test_a_lease_container_partitioned_by_partition_key_works_too(store: DocumentStore) -> None:
    leases = store.container(ContainerSpec("pk-leases", "/partitionKey"))
    _keeper(leases).acquire(lambda: None)
    assert leases.read(ID, ID)["partitionKey"] == ID


def test_a_lease_container_partitioned_otherwise_is_refused(store: DocumentStore) -> None:
    leases = store.container(ContainerSpec("odd", "/tenant"))
    with pytest.raises(LeaseContainerError, match="must be partitioned by /id"):
        check_lease_container(leases)
    with pytest.raises(LeaseContainerError):
        _keeper(leases)


def test_the_store_opens_existing_containers_by_name_and_knows_the_feed_end(
    store: DocumentStore,
) -> None:
    assert store.existing("items") is None
    assert store.change_feed_end("items") == "0"
    items = store.container(ContainerSpec("items", "/k"))
    items.upsert({"id": "a", "k": 1})
    items.upsert({"id": "b", "k": 1})
    found = store.existing("items")
    assert found is not None and found.spec == ContainerSpec("items", "/k")
    end = store.change_feed_end("items")
    assert found.changes(end).changes == []
    items.upsert({"id": "c", "k": 2})
    assert [c.document["id"] for c in found.changes(end).changes] == ["c"]
