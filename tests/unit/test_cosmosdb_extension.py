"""The Cosmos DB extension in process: leases, start positions, failures, retries, bindings."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.appsettings import AppSettings
from devhost.cosmosdb.extension import CosmosDBConfigError, CosmosDBExtension
from devhost.cosmosdb.options import CosmosDBBindingError
from devhost.extension import HostContext
from devhost.hostconfig import HostConfig
from devhost.indexing import FunctionSpec, index_app
from devhost.invocation import FunctionFailed, Invoker
from devhost.keys import HostKeys
from embedded.documents.model import ContainerSpec, DocumentNotFound
from embedded.documents.store import Container, DocumentStore, database_path
from tests.eventhub_partition import until

pytestmark = pytest.mark.unit

LEASE = "localhost_db_items..0"
MakeContext = Callable[..., HostContext]
Received = list[list[dict[str, Any]]]


@pytest.fixture
async def make_context(tmp_path: Path) -> AsyncIterator[MakeContext]:
    invokers: list[Invoker] = []

    def make(settings: dict[str, str] | None = None) -> HostContext:
        invokers.append(Invoker(max_threads=2))
        return HostContext(
            script_root=tmp_path,
            data_dir=tmp_path / "data",
            settings=AppSettings({"DEVHOST_COSMOSDB_POLL_MS": "20", **(settings or {})}, {}),
            host_config=HostConfig(),
            invoker=invokers[-1],
            keys=HostKeys(master="m", host={"default": "h"}),
            base_url="http://127.0.0.1:7071",
            log=logging.getLogger("test"),
        )

    yield make
    for invoker in invokers:
        invoker.close()


@pytest.fixture
def store(tmp_path: Path) -> DocumentStore:
    return DocumentStore(database_path(tmp_path / "data", "db"))


def _items(store: DocumentStore) -> Container:
    return store.container(ContainerSpec("items", "/id"))


def _watcher(
    received: Received,
    fail: Callable[[list[dict[str, Any]]], bool] = lambda _: False,
    **trigger: Any,
) -> FunctionSpec:
    app = func.FunctionApp()
    retry = trigger.pop("retry", None)
    trigger.setdefault("create_lease_container_if_not_exists", True)

    def watch(documents: func.DocumentList) -> None:
        batch = [document.to_dict() for document in documents]
        received.append(batch)
        if fail(batch):
            raise RuntimeError("this batch fails")

    decorated: Any = app.cosmos_db_trigger(
        arg_name="documents",
        connection="Conn",
        database_name="db",
        container_name="items",
        **trigger,
    )(watch)
    if retry is not None:
        decorated = app.retry(strategy="fixed_delay", delay_interval="00:00:00", **retry)(decorated)
    app.function_name("watch")(decorated)
    return index_app(app, AppSettings({}, environ={}))[0]


def _lease(store: DocumentStore) -> dict[str, Any] | None:
    leases = store.existing("leases")
    try:
        return None if leases is None else leases.read(LEASE, LEASE)
    except DocumentNotFound:
        return None


def _ids(received: Received) -> list[str]:
    return [document["id"] for batch in received for document in batch]


async def _started(context: HostContext, functions: list[FunctionSpec]) -> CosmosDBExtension:
    extension = CosmosDBExtension(context, functions)
    await extension.start()
    return extension


async def test_a_new_lease_starts_from_now_and_a_restart_resumes_from_the_lease(
    make_context: MakeContext, store: DocumentStore
) -> None:
    items = _items(store)
    items.upsert({"id": "before"})
    received: Received = []
    extension = await _started(make_context(), [_watcher(received)])
    try:
        await until(lambda: _lease(store) is not None)  # "now" is when the lease was made
        items.upsert({"id": "after-1"})
        await until(lambda: _ids(received) == ["after-1"])
    finally:
        await extension.stop()
    lease = _lease(store)
    assert lease is not None and lease["Owner"] is None  # released on stop
    assert lease["ContinuationToken"] == str(items.changes().changes[-1].lsn)
    items.upsert({"id": "while-down"})
    extension = await _started(make_context(), [_watcher(received)])
    try:
        await until(lambda: _ids(received) == ["after-1", "while-down"])
    finally:
        await extension.stop()


async def test_start_from_beginning_delivers_everything_in_batches_of_max_items(
    make_context: MakeContext, store: DocumentStore
) -> None:
    items = _items(store)
    for n in range(7):
        items.upsert({"id": f"d{n}", "n": n})
    received: Received = []
    function = _watcher(received, start_from_beginning=True, max_items_per_invocation=3)
    extension = await _started(make_context(), [function])
    try:
        await until(lambda: len(_ids(received)) == 7)
    finally:
        await extension.stop()
    assert [len(batch) for batch in received] == [3, 3, 1]
    assert [batch[0]["n"] for batch in received] == [0, 3, 6]
    assert all(document["_etag"] and document["_lsn"] for batch in received for document in batch)


async def test_start_from_time_skips_documents_written_before_it(
    make_context: MakeContext, tmp_path: Path
) -> None:
    clock = [datetime(2024, 1, 1, tzinfo=UTC).timestamp()]
    store = DocumentStore(database_path(tmp_path / "data", "db"), clock=lambda: clock[0])
    items = _items(store)
    items.upsert({"id": "old"})
    clock[0] += 3600
    items.upsert({"id": "new"})
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=30)
    received: Received = []
    extension = await _started(
        make_context(), [_watcher(received, start_from_time=start.isoformat())]
    )
    try:
        await until(lambda: _ids(received) == ["new"])
    finally:
        await extension.stop()


async def test_a_failed_batch_without_a_retry_policy_is_passed_by_as_in_azure(
    make_context: MakeContext, store: DocumentStore, caplog: pytest.LogCaptureFixture
) -> None:
    items = _items(store)
    items.upsert({"id": "bad"})
    received: Received = []
    function = _watcher(received, lambda b: b[0]["id"] == "bad", start_from_beginning=True)
    extension = await _started(make_context(), [function])
    try:
        await until(lambda: _ids(received) == ["bad"])
        items.upsert({"id": "good"})
        await until(lambda: _ids(received) == ["bad", "good"])
    finally:
        await extension.stop()
    assert "the lease moves past 1 changes" in caplog.text


async def test_a_retry_policy_runs_the_same_batch_again(
    make_context: MakeContext, store: DocumentStore
) -> None:
    _items(store).upsert({"id": "flaky"})
    received: Received = []
    function = _watcher(
        received,
        lambda _: len(received) < 3,
        start_from_beginning=True,
        retry={"max_retry_count": "5"},
    )
    extension = await _started(make_context(), [function])
    try:
        await until(lambda: len(received) == 3)
        await asyncio.sleep(0.1)
    finally:
        await extension.stop()
    assert _ids(received) == ["flaky"] * 3  # failed twice, then succeeded; never again


async def test_stopping_during_retries_leaves_the_lease_where_it_was(
    make_context: MakeContext, store: DocumentStore
) -> None:
    _items(store).upsert({"id": "stuck"})
    received: Received = []
    function = _watcher(
        received, lambda _: True, start_from_beginning=True, retry={"max_retry_count": "-1"}
    )
    extension = await _started(make_context(), [function])
    await until(lambda: len(received) >= 2)
    await extension.stop()
    lease = _lease(store)
    assert lease is not None and lease["ContinuationToken"] is None  # still before "stuck"


async def test_a_missing_lease_container_stops_the_start_unless_it_may_be_created(
    make_context: MakeContext, store: DocumentStore
) -> None:
    _items(store)
    function = _watcher([], create_lease_container_if_not_exists=False)
    extension = CosmosDBExtension(make_context(), [function])
    with pytest.raises(CosmosDBConfigError) as raised:
        await extension.start()
    assert str(raised.value) == (
        "function 'watch', binding 'documents' (cosmosDBTrigger): the lease container 'leases' "
        "(in database 'db') does not exist. To automatically create the lease container, set "
        "'createLeaseContainerIfNotExists' to 'true'"
    )


async def test_a_lease_container_with_another_partition_key_is_refused(
    make_context: MakeContext, store: DocumentStore
) -> None:
    store.container(ContainerSpec("leases", "/tenant"))
    extension = CosmosDBExtension(make_context(), [_watcher([])])
    with pytest.raises(CosmosDBConfigError, match="must be partitioned by /id"):
        await extension.start()


async def test_the_trigger_waits_for_its_container_to_be_created(
    make_context: MakeContext, store: DocumentStore, caplog: pytest.LogCaptureFixture
) -> None:
    received: Received = []
    extension = await _started(make_context(), [_watcher(received, start_from_beginning=True)])
    try:
        await until(lambda: "the monitored container 'items'" in caplog.text)
        _items(store).upsert({"id": "first"})
        await until(lambda: _ids(received) == ["first"])
    finally:
        await extension.stop()


async def test_a_container_created_after_the_trigger_started_is_all_new(
    make_context: MakeContext, store: DocumentStore, caplog: pytest.LogCaptureFixture
) -> None:
    received: Received = []
    extension = await _started(make_context(), [_watcher(received)])  # start from now
    try:
        await until(lambda: "the monitored container 'items'" in caplog.text)
        items = _items(store)
        items.upsert({"id": "first"})
        items.upsert({"id": "second"})
        await until(lambda: _ids(received) == ["first", "second"])
    finally:
        await extension.stop()


async def test_a_lease_that_cannot_be_read_on_from_says_how_to_start_again(
    make_context: MakeContext, store: DocumentStore, caplog: pytest.LogCaptureFixture
) -> None:
    _items(store).upsert({"id": "a"})
    leases = store.container(ContainerSpec("leases", "/id"))
    leases.upsert({"id": LEASE, "LeaseToken": "0", "ContinuationToken": "garbage"})
    extension = await _started(make_context(), [_watcher([])])
    try:
        await until(lambda: "delete the lease document to start again" in caplog.text)
    finally:
        await extension.stop()
    assert "cannot read on from its ContinuationToken 'garbage'" in caplog.text


def test_functions_sharing_a_lease_run_one_of_them_with_a_warning(
    make_context: MakeContext,
) -> None:
    functions = [_watcher([]), _watcher([])]
    twin = dataclasses.replace(functions[1], name="twin")
    extension = CosmosDBExtension(make_context(), [functions[0], twin])
    lines = extension.describe()
    assert lines[0] == (
        "watch: cosmosDBTrigger db/items [lease db/leases/localhost_db_items..0, batches of up "
        "to 100, polled every 20 ms, new lease starts from now]"
    )
    assert lines[1].startswith("warning: twin will not run: it shares the lease")


def test_a_trigger_parameter_the_worker_would_refuse_stops_the_start(
    make_context: MakeContext,
) -> None:
    app = func.FunctionApp()

    @app.cosmos_db_trigger(arg_name="docs", connection="C", database_name="db", container_name="c")
    def watch(docs: func.Document) -> None: ...

    functions = index_app(app, AppSettings({}, environ={}))
    with pytest.raises(CosmosDBBindingError, match="func.DocumentList"):
        CosmosDBExtension(make_context(), functions)


# the bindings -------------------------------------------------------------------------------


def _http_app() -> list[FunctionSpec]:
    app = func.FunctionApp()

    @app.function_name("write")
    @app.route(route="write")
    @app.cosmos_db_output(
        arg_name="out",
        connection="Conn",
        database_name="db",
        container_name="%TARGET%",
        create_if_not_exists="%CREATE%",
        partition_key="/tenant",
    )
    def write(req: func.HttpRequest, out: func.Out[func.DocumentList]) -> None:
        out.set(req.get_json())

    @app.function_name("point")
    @app.route(route="point/{tenant}/{id}")
    @app.cosmos_db_input(
        arg_name="found",
        connection="Conn",
        database_name="db",
        container_name="%TARGET%",
        id="{id}",
        partition_key="{tenant}",
    )
    def point(req: func.HttpRequest, found: func.DocumentList) -> Any:
        return found

    @app.function_name("query")
    @app.route(route="query/{tenant}")
    @app.cosmos_db_input(
        arg_name="found",
        connection="Conn",
        database_name="db",
        container_name="%TARGET%",
        sql_query="SELECT * FROM c WHERE c.tenant = {tenant} AND c.n >= 1 ORDER BY c.n DESC",
    )
    def query(req: func.HttpRequest, found: func.DocumentList) -> Any:
        return found

    return index_app(app, AppSettings({"TARGET": "things", "CREATE": "true"}, environ={}))


def _request(body: Any = None, **route: str) -> func.HttpRequest:
    data = b"" if body is None else json.dumps(body).encode()
    return func.HttpRequest("POST", "http://localhost/api/x", route_params=route, body=data)


async def test_output_upserts_and_inputs_read_by_id_and_by_query(
    make_context: MakeContext, store: DocumentStore
) -> None:
    context = make_context()
    CosmosDBExtension(context, [])
    write, point, query = _http_app()
    documents = [{"id": "a", "tenant": "t", "n": 1}, {"id": "b", "tenant": "t", "n": 2}]
    await context.invoker.invoke(write, _request(documents))
    await context.invoker.invoke(write, _request([{"id": "a", "tenant": "t", "n": 3}]))
    things = store.existing("things")
    assert things is not None and things.spec.partition_key_path == "/tenant"

    found = (await context.invoker.invoke(point, _request(tenant="t", id="a"))).result
    assert isinstance(found, func.DocumentList) and len(found) == 1
    assert {k: found[0][k] for k in ("id", "tenant", "n")} == {"id": "a", "tenant": "t", "n": 3}
    missing = await context.invoker.invoke(point, _request(tenant="t", id="nope"))
    assert missing.result is None
    ordered = (await context.invoker.invoke(query, _request(tenant="t"))).result
    assert [document["id"] for document in ordered] == ["a", "b"]
    other = (await context.invoker.invoke(query, _request(tenant="other"))).result
    assert list(other) == []


async def test_output_errors_fail_the_invocation_with_azures_and_the_stores_words(
    make_context: MakeContext,
) -> None:
    context = make_context()
    CosmosDBExtension(context, [])
    app = func.FunctionApp()

    @app.function_name("write")
    @app.route(route="write")
    @app.cosmos_db_output(arg_name="out", connection="C", database_name="db", container_name="x")
    def write(req: func.HttpRequest, out: func.Out[func.DocumentList]) -> None:
        out.set(req.get_json())

    @app.function_name("create")
    @app.route(route="create")
    @app.cosmos_db_output(
        arg_name="out",
        connection="C",
        database_name="db",
        container_name="y",
        create_if_not_exists=True,
    )
    def create(req: func.HttpRequest, out: func.Out[func.DocumentList]) -> None:
        out.set(req.get_json())

    write_spec, create_spec = index_app(app, AppSettings({}, environ={}))
    with pytest.raises(FunctionFailed) as raised:
        await context.invoker.invoke(write_spec, _request([{"id": "a"}]))
    assert str(raised.value.error).endswith(
        "the container 'x' (in database 'db') does not exist. To automatically create the "
        "container, set 'createIfNotExists' to 'true'"
    )
    with pytest.raises(FunctionFailed) as raised:
        await context.invoker.invoke(create_spec, _request([{"id": "ok"}, {"name": "no id"}]))
    assert "document 1 was refused: a document needs an `id`" in str(raised.value.error)
    with pytest.raises(FunctionFailed) as raised:
        await context.invoker.invoke(create_spec, _request([{"id": "a/b"}]))
    assert "the document was refused: the id 'a/b' contains '/'" in str(raised.value.error)


async def test_a_query_on_a_missing_container_or_a_bad_query_fails_clearly(
    make_context: MakeContext, store: DocumentStore
) -> None:
    context = make_context()
    CosmosDBExtension(context, [])
    _, point, query = _http_app()
    assert (await context.invoker.invoke(point, _request(tenant="t", id="a"))).result is None
    with pytest.raises(FunctionFailed) as raised:
        await context.invoker.invoke(query, _request(tenant="t"))
    assert "the container 'things' (in database 'db') does not exist" in str(raised.value.error)
    with pytest.raises(FunctionFailed) as raised:
        await context.invoker.invoke(query, _request())
    assert "no value for {tenant}" in str(raised.value.error)
