"""The document store's behaviour, as every adapter must have it (the conformance suite).

Every test runs against each adapter through the `make` fixture:

- `embedded`: the SQLite adapter, directly;
- `cosmos`: the Cosmos DB adapter on the real `azure-cosmos` SDK, against the loopback Cosmos DB
  server of `tests/fakes/cosmos.py` (REST over TLS, Entra ID tokens);
- `azure`: the Cosmos DB adapter against a real account when `COSMOS_ENDPOINT` is set (marked
  `azure`, skipped otherwise). Its containers must exist (data-plane RBAC cannot create them):
  `alerts` (/accountId), `quotas` (/app), `notes` (/accountId) in `COSMOS_DATABASE`; the tests
  empty them first. Tests that move the clock (TTL) run on the first two only."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from embedded.documents.model import (
    BatchOperation,
    Condition,
    ContainerSpec,
    DocumentConflict,
    DocumentNotFound,
    InvalidDocument,
    PatchOperation,
    PreconditionFailed,
    Query,
)
from embedded.documents.store import Container, DocumentStore
from shared.documents.cosmos import CosmosDatabase
from tests.devhost_process import PROJECT_ROOT
from tests.fakes.cosmos import FakeCosmos, FakeCredential

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

MakeContainer = Callable[..., Container]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["embedded", "cosmos", pytest.param("azure", marks=pytest.mark.azure)])
def adapter(request: pytest.FixtureRequest) -> str:
    if request.param == "azure" and not os.environ.get("COSMOS_ENDPOINT"):
        pytest.skip("COSMOS_ENDPOINT is not set: no live Cosmos DB account")
    return str(request.param)


@pytest.fixture
def make(
    request: pytest.FixtureRequest, adapter: str, tmp_path: Path, clock: Clock
) -> MakeContainer:
    if adapter == "embedded":
        store = DocumentStore(tmp_path / "documents" / "platform.sqlite3", clock=clock)
        request.addfinalizer(store.close)

        def embedded(name: str = "alerts", path: str = "/accountId", ttl: int | None = None):
            return store.container(ContainerSpec(name, path, ttl))

        return embedded
    if adapter == "cosmos":
        fake = FakeCosmos(tmp_path / "cosmos.sqlite3", tmp_path / "tls", clock=clock).__enter__()
        request.addfinalizer(fake.__exit__)
        database = CosmosDatabase(fake.url, "platform", FakeCredential())
        request.addfinalizer(database.close)

        def cosmos(name: str = "alerts", path: str = "/accountId", ttl: int | None = None):
            fake.declare(ContainerSpec(name, path, ttl))
            return database.container(ContainerSpec(name, path, ttl))

        return cosmos
    live = CosmosDatabase(
        os.environ["COSMOS_ENDPOINT"], os.environ.get("COSMOS_DATABASE", "platform")
    )
    request.addfinalizer(live.close)

    def azure(name: str = "alerts", path: str = "/accountId", ttl: int | None = None):
        container = live.container(ContainerSpec(name, path, ttl))
        for document in container.proxy.query_items(
            "SELECT * FROM c", enable_cross_partition_query=True
        ):
            container.delete(document["id"], container.spec.partition_key_of(document))
        return container

    return azure


@pytest.fixture
def moves_the_clock(adapter: str) -> None:
    if adapter == "azure":
        pytest.skip("a live account's clock cannot be moved")


def doc(id: str, account: str = "a1", **fields: object) -> dict[str, object]:
    return {"id": id, "accountId": account, **fields}


def test_point_operations_and_system_properties(make: MakeContainer) -> None:
    alerts = make()
    created = alerts.create(doc("x", score=0.9))
    assert created["_etag"].startswith('"') and isinstance(created["_ts"], int)
    assert alerts.read("x", "a1") == created
    with pytest.raises(DocumentConflict, match="exists"):
        alerts.create(doc("x"))
    alerts.create(doc("x", "a2"))  # the same id in another partition is another document
    upserted = alerts.upsert(doc("x", score=0.1))
    assert upserted["score"] == 0.1 and upserted["_etag"] != created["_etag"]
    with pytest.raises(DocumentNotFound):
        alerts.replace(doc("nope"))
    alerts.delete("x", "a1")
    with pytest.raises(DocumentNotFound):
        alerts.read("x", "a1")
    assert alerts.read("x", "a2")["accountId"] == "a2"


def test_read_many_answers_each_key_in_order_and_none_for_a_missing_one(
    make: MakeContainer,
) -> None:
    alerts = make()
    x1 = alerts.create(doc("x", score=0.9))
    x2 = alerts.create(doc("x", "a2", score=0.1))  # the same id in another partition
    y = alerts.create(doc("y"))
    keys = [("y", "a1"), ("x", "a2"), ("nope", "a1"), ("x", "a1"), ("y", "a2"), ("x", "a2")]
    assert alerts.read_many(keys) == [y, x2, None, x1, None, x2]
    assert alerts.read_many([]) == []
    many = [(f"m{n}", "a3") for n in range(520)]  # past one statement's 500 ids
    alerts.upsert_many([doc(id, account) for id, account in many[::2]])
    found = alerts.read_many(many)
    assert [d is not None for d in found] == [n % 2 == 0 for n in range(520)]
    with pytest.raises(InvalidDocument):
        alerts.read_many([("bad/id", "a1")])


def test_etags_make_replace_and_delete_conditional(make: MakeContainer) -> None:
    alerts = make()
    first = alerts.create(doc("x", n=1))
    second = alerts.replace(doc("x", n=2), if_match=first["_etag"])
    with pytest.raises(PreconditionFailed, match="changed"):
        alerts.replace(doc("x", n=3), if_match=first["_etag"])
    with pytest.raises(PreconditionFailed):
        alerts.delete("x", "a1", if_match=first["_etag"])
    alerts.delete("x", "a1", if_match=second["_etag"])


def test_patches_are_atomic_per_document(make: MakeContainer) -> None:
    quotas = make("quotas", "/app")
    quotas.create({"id": "q", "app": "web", "used": 0, "limits": {"daily": 10}})

    def spend() -> None:
        for _ in range(50):
            quotas.patch("q", "web", [PatchOperation("incr", "/used", 1)])

    threads = [threading.Thread(target=spend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert quotas.read("q", "web")["used"] == 300
    patched = quotas.patch(
        "q", "web", [PatchOperation("set", "/limits/daily", 20), PatchOperation("remove", "/used")]
    )
    assert patched["limits"] == {"daily": 20} and "used" not in patched
    before = quotas.read("q", "web")
    for bad in (
        [PatchOperation("set", "/limits/daily", 30), PatchOperation("incr", "/limits", 1)],
        [PatchOperation("remove", "/missing")],
        [PatchOperation("set", "/a/b", 1)],
        [PatchOperation("set", "/app", "other")],
    ):
        with pytest.raises(InvalidDocument):
            quotas.patch("q", "web", bad)
    assert quotas.read("q", "web") == before  # none of a failed patch was kept


@pytest.mark.parametrize("bad", ["", "a/b", "a\\b", "a?b", "a#b", "x" * 1024, 7, None])
def test_ids_cosmos_refuses_are_refused(make: MakeContainer, bad: object) -> None:
    with pytest.raises(InvalidDocument, match="id"):
        make().create({"id": bad, "accountId": "a1"})


@pytest.mark.parametrize(
    "bad",
    [
        doc("nan", score=float("nan")),
        doc("inf", score=float("inf")),
        doc("set", tags={1, 2}),
        {"id": "pk", "accountId": {"nested": 1}},
        "not an object",
    ],
)
def test_documents_that_are_not_json_objects_are_refused(make: MakeContainer, bad: object) -> None:
    with pytest.raises(InvalidDocument):
        make().upsert(bad)  # type: ignore[arg-type]


def test_a_document_over_2_mb_is_refused_naming_it(make: MakeContainer) -> None:
    with pytest.raises(InvalidDocument, match="'big' is over 2 MB"):
        make().create(doc("big", blob="x" * (2 * 1024 * 1024)))


def test_queries_filter_order_and_page(make: MakeContainer) -> None:
    alerts = make()
    for n in range(25):
        alerts.create(doc(f"d{n:02}", f"a{n % 2}", n=n, kind="fraud" if n % 3 else "drift"))
    alerts.create(doc("flag", "a1", n=None, open=True))
    inside = alerts.query(
        Query(where=[Condition("/n", ">=", 10)], order_by=[("/n", True)], partition_key="a0")
    )
    assert [d["n"] for d in inside.documents] == [24, 22, 20, 18, 16, 14, 12, 10]
    seen: list[str] = []
    continuation = None
    while True:
        page = alerts.query(
            Query(where=[Condition("/kind", "=", "fraud")], cross_partition=True, page_size=4),
            continuation,
        )
        seen += [d["id"] for d in page.documents]
        continuation = page.continuation
        if continuation is None:
            break
    assert sorted(seen) == sorted(f"d{n:02}" for n in range(25) if n % 3)
    assert len(seen) == len(set(seen))
    cross = Query(cross_partition=True)

    def ids(*conditions: Condition) -> set[str]:
        return {
            d["id"] for d in alerts.query(Query(where=conditions, cross_partition=True)).documents
        }

    assert ids(Condition("/n", "in", [1, 2, 3])) == {"d01", "d02", "d03"}
    assert ids(Condition("/open", "=", True)) == {"flag"}
    assert ids(Condition("/n", "=", None)) == {"flag"}
    assert ids(Condition("/open", "exists")) == {"flag"}
    assert ids(Condition("/id", "starts_with", "d2")) == {f"d2{n}" for n in range(5)}
    assert len(alerts.query(cross).documents) == 26
    for bad_query in (
        Query(),
        Query(where=[Condition("n", "=", 1)], cross_partition=True),
        Query(where=[Condition("/n", "<", True)], cross_partition=True),
        Query(where=[Condition("/n", "in", [])], cross_partition=True),
        Query(cross_partition=True, page_size=0),
    ):
        with pytest.raises(InvalidDocument):
            alerts.query(bad_query)
    with pytest.raises(InvalidDocument, match="continuation"):
        alerts.query(cross, "not-a-continuation")


def test_comparisons_follow_cosmos_typing(make: MakeContainer) -> None:
    """A comparison between different types, or with a missing field, is undefined in Cosmos
    DB's SQL, so the document does not match (not even `!=`)."""
    alerts = make()
    for id, value in (("num", 5), ("text", "5"), ("none", None), ("yes", True)):
        alerts.create(doc(id, n=value))
    alerts.create(doc("missing"))

    def ids(condition: Condition) -> set[str]:
        found = alerts.query(Query(where=[condition], cross_partition=True)).documents
        return {d["id"] for d in found}

    assert ids(Condition("/n", ">", 1)) == {"num"}
    assert ids(Condition("/n", ">=", "")) == {"text"}
    assert ids(Condition("/n", "!=", 4)) == {"num"}
    assert ids(Condition("/n", "!=", None)) == set()
    assert ids(Condition("/n", "=", None)) == {"none"}
    assert ids(Condition("/n", "!=", False)) == {"yes"}
    assert ids(Condition("/n", "starts_with", "5")) == {"text"}


def test_a_batch_commits_whole_or_not_at_all(make: MakeContainer) -> None:
    alerts = make()
    alerts.create(doc("kept", n=1))
    results = alerts.batch(
        "a1",
        [
            BatchOperation("create", document=doc("b1")),
            BatchOperation("patch", id="kept", patch=[PatchOperation("incr", "/n", 1)]),
            BatchOperation("read", id="b1"),
        ],
    )
    assert results[1] is not None and results[1]["n"] == 2
    assert results[2] is not None and results[2]["id"] == "b1"
    with pytest.raises(DocumentConflict, match="batch operation 1"):
        alerts.batch(
            "a1",
            [
                BatchOperation("upsert", document=doc("b2")),
                BatchOperation("create", document=doc("b1")),
            ],
        )
    with pytest.raises(DocumentNotFound):
        alerts.read("b2", "a1")  # the first operation was rolled back with the batch
    with pytest.raises(InvalidDocument, match="partition key"):
        alerts.batch("a1", [BatchOperation("create", document=doc("b3", "a2"))])


def test_a_run_of_creates_is_written_in_order_or_refused_naming_the_one_at_fault(
    make: MakeContainer,
) -> None:
    alerts = make()
    alerts.create(doc("taken"))
    start = alerts.changes().continuation
    made = alerts.batch(
        "a1", [BatchOperation("create", document=doc(f"c{n}", n=n)) for n in range(5)]
    )
    assert [d["id"] if d else None for d in made] == [f"c{n}" for n in range(5)]
    assert len({d["_etag"] for d in made if d}) == 5
    assert [c.document["id"] for c in alerts.changes(start).changes] == [f"c{n}" for n in range(5)]
    assert alerts.read("c3", "a1")["n"] == 3
    run = [BatchOperation("create", document=doc(f"d{n}")) for n in range(5)]
    with pytest.raises(DocumentConflict, match="batch operation 3"):
        alerts.batch("a1", [*run[:3], BatchOperation("create", document=doc("taken")), run[4]])
    with pytest.raises(InvalidDocument, match="batch operation 2"):
        alerts.batch("a1", [*run[:2], BatchOperation("create", document=doc("d2", "a2"))])
    with pytest.raises(InvalidDocument, match="batch operation 1"):
        alerts.batch("a1", [run[0], BatchOperation("create", document={"accountId": "a1"})])
    assert not alerts.query(
        Query(partition_key="a1", where=[Condition("/id", "starts_with", "d")])
    ).documents


def test_upsert_many_writes_documents_of_any_partitions(make: MakeContainer) -> None:
    alerts = make()
    alerts.create(doc("old", "a2", n=0))
    written = alerts.upsert_many([doc("u1", "a1", n=1), doc("old", "a2", n=2), doc("u3", "a3")])
    assert [d["id"] for d in written] == ["u1", "old", "u3"]
    assert all(d["_etag"] for d in written)
    assert alerts.read("old", "a2")["n"] == 2 and alerts.read("u3", "a3")["id"] == "u3"
    again = alerts.upsert_many([doc("u1", "a1", n=1)])  # a retry of the whole is safe
    assert again[0]["n"] == 1 and alerts.upsert_many([]) == []
    with pytest.raises(InvalidDocument):
        alerts.upsert_many([doc("u4", "a1"), doc("bad/id", "a1")])


def test_a_crash_mid_batch_leaves_none_of_it(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    script = f"""
import os
from pathlib import Path
from embedded.documents.model import ContainerSpec
from embedded.documents.store import DocumentStore
store = DocumentStore(Path({str(path)!r}))
alerts = store.container(ContainerSpec("alerts", "/accountId"))
with store.write() as connection:
    for n in range(3):
        alerts._store(connection, {{"id": f"d{{n}}", "accountId": "a1"}}, f"d{{n}}", '"a1"', n + 1)
    os._exit(9)  # killed before the commit
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, timeout=60)
    assert done.returncode == 9
    alerts = DocumentStore(path).container(ContainerSpec("alerts", "/accountId"))
    assert alerts.query(Query(cross_partition=True)).documents == []


@pytest.mark.usefixtures("moves_the_clock")
def test_ttl_expires_documents_at_once_and_purges_them(
    make: MakeContainer, clock: Clock, adapter: str
) -> None:
    alerts = make("alerts", "/accountId", ttl=60)
    alerts.create(doc("short"))
    alerts.create(doc("forever", ttl=-1))
    alerts.create(doc("long", ttl=600))
    clock.now += 61
    with pytest.raises(DocumentNotFound):
        alerts.read("short", "a1")
    assert [d is not None for d in alerts.read_many([("short", "a1"), ("long", "a1")])] == [
        False,
        True,
    ]
    assert {d["id"] for d in alerts.query(Query(cross_partition=True)).documents} == {
        "forever",
        "long",
    }
    assert {c.document["id"] for c in alerts.changes().changes} == {"forever", "long"}
    alerts.create(doc("short"))  # an expired id can be used again
    purged_by_us = adapter == "embedded"  # Cosmos DB purges by itself: purge_expired is 0
    assert alerts.purge_expired() == 0
    clock.now += 600
    assert alerts.purge_expired() == (2 if purged_by_us else 0)  # short (again) and long
    with pytest.raises(DocumentNotFound):
        alerts.read("long", "a1")
    untimed = make("notes", "/accountId")  # no default TTL: expiry is off
    untimed.create(doc("n", ttl=5))
    clock.now += 10
    assert untimed.read("n", "a1")["ttl"] == 5
    with pytest.raises(InvalidDocument, match="ttl"):
        alerts.create(doc("bad", ttl=0))


@pytest.mark.usefixtures("moves_the_clock")
def test_a_batch_creates_over_expired_documents(make: MakeContainer, clock: Clock) -> None:
    alerts = make("alerts", "/accountId", ttl=60)
    alerts.create(doc("short", n=1))
    clock.now += 61
    alerts.batch("a1", [BatchOperation("create", document=doc(i, n=2)) for i in ("short", "s2")])
    assert alerts.read("short", "a1")["n"] == 2


def test_the_change_feed_gives_latest_versions_in_write_order(make: MakeContainer) -> None:
    alerts = make()
    for id in ("a", "b", "c"):
        alerts.create(doc(id, n=1))
    first = alerts.changes(max_items=2)
    assert [c.document["id"] for c in first.changes] == ["a", "b"]
    alerts.patch("a", "a1", [PatchOperation("incr", "/n", 1)])
    alerts.create(doc("d", "a2"))
    alerts.delete("b", "a1")
    rest = alerts.changes(first.continuation)
    assert [
        (c.document["id"], c.document["n"] if "n" in c.document else None) for c in rest.changes
    ] == [
        ("c", 1),
        ("a", 2),
        ("d", None),
    ]
    assert alerts.changes(rest.continuation).changes == []
    assert [c.document["id"] for c in alerts.changes(partition_key="a2").changes] == ["d"]
    assert [c.document["id"] for c in alerts.changes().changes] == ["c", "a", "d"]


def test_a_container_keeps_its_partition_key(make: MakeContainer) -> None:
    make("alerts", "/accountId")
    with pytest.raises(InvalidDocument, match="partition key"):
        make("alerts", "/deviceId")
    with pytest.raises(InvalidDocument, match="partition key path"):
        ContainerSpec("x", "accountId")
