"""The document store on Azure Cosmos DB for NoSQL, through `azure-cosmos`.

Each port operation is the Cosmos DB feature of the same meaning: point reads and writes,
`If-Match` etags (`MatchConditions.IfNotModified`), the patch API (`set`, `add`, `incr`,
`remove`), transactional batches, queries in the SQL subset of `embedded.documents.sql` with
the service's continuation tokens, TTL (the service expires and purges documents itself), and
the change feed's pull model in latest-version mode.

- One `CosmosClient` per process, with `DefaultAzureCredential` (Entra ID, data-plane RBAC):
  no keys. With data-plane RBAC an app cannot create containers, so containers are declared in
  Bicep; `container(spec)` reads the container's definition and refuses one whose partition
  key differs from the code's declaration, naming both.
- Throttling (429) is retried by the SDK after the service's `x-ms-retry-after-ms`, up to
  `throttle_retries` times within `throttle_wait_s`; past that the caller gets `Throttled`.
- Every response's request charge (RUs) is recorded in `RequestCharges`, per container and
  operation.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NoReturn

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.cosmos import ContainerProxy, CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError

from embedded.documents.model import (
    MAX_DOCUMENT_BYTES,
    BatchOperation,
    Change,
    ChangePage,
    ContainerSpec,
    DocumentConflict,
    DocumentNotFound,
    DocumentStoreError,
    InvalidDocument,
    Json,
    Page,
    PatchOperation,
    PreconditionFailed,
    Query,
    Throttled,
    check_id,
)
from embedded.documents.sql import to_sql

log = logging.getLogger(__name__)

MAX_BATCH_OPERATIONS = 100  # Cosmos DB's limit on a transactional batch
CONCURRENCY = 8  # requests of one `upsert_many` in flight (under the HTTP pool's 10 connections)
_PATCH_OPS = {"set": "set", "add": "add", "incr": "incr", "remove": "remove"}


# Continuation tokens small enough to travel in a URL's query (the host refuses targets over
# 8 KiB): the service makes them at most this many KB.
CONTINUATION_LIMIT_KB = 1


@dataclass
class Charge:
    """The request units one kind of operation on one container has cost so far."""

    requests: int = 0
    request_units: float = 0.0


class RequestCharges:
    """Request units spent, per (container, operation), summed since the process started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._charges: dict[tuple[str, str], Charge] = {}

    def record(self, container: str, operation: str, headers: Mapping[str, str]) -> None:
        try:
            units = float(headers.get("x-ms-request-charge", 0) or 0)
        except (TypeError, ValueError):
            units = 0.0
        with self._lock:
            charge = self._charges.setdefault((container, operation), Charge())
            charge.requests += 1
            charge.request_units += units
        log.debug("cosmos %s %s: %.2f RU", container, operation, units)

    def snapshot(self) -> dict[tuple[str, str], Charge]:
        with self._lock:
            return {key: Charge(c.requests, c.request_units) for key, c in self._charges.items()}

    def total(self) -> float:
        with self._lock:
            return sum(charge.request_units for charge in self._charges.values())


def _own_executor() -> Callable[[], ThreadPoolExecutor]:
    pool: list[ThreadPoolExecutor] = []
    lock = threading.Lock()

    def executor() -> ThreadPoolExecutor:
        with lock:
            if not pool:
                pool.append(ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="cosmos"))
            return pool[0]

    return executor


class CosmosDatabase:
    """One Cosmos DB database; one client for the process, shared by its containers."""

    def __init__(
        self,
        endpoint: str,
        database: str,
        credential: TokenCredential | None = None,
        *,
        throttle_retries: int = 9,
        throttle_wait_s: float = 30.0,
        charges: RequestCharges | None = None,
        **client_options: Any,
    ) -> None:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self.charges = charges or RequestCharges()
        try:  # the client reads the account (its regions) as it starts
            self.client = CosmosClient(
                endpoint,
                credential=credential,
                retry_throttle_total=max(1, throttle_retries),
                retry_throttle_backoff_max=max(1, int(throttle_wait_s)),
                **client_options,
            )
        except CosmosHttpResponseError as error:
            _raise(error, f"the Cosmos DB account {endpoint}")
        self.database: DatabaseProxy = self.client.get_database_client(database)
        self.name = database
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def container(self, spec: ContainerSpec) -> CosmosContainer:
        """The declared container, after checking the service's definition agrees with it."""
        proxy = self.database.get_container_client(spec.name)
        try:
            properties = proxy.read()
        except CosmosHttpResponseError as error:
            if error.status_code == 404:
                raise InvalidDocument(
                    f"container {spec.name} does not exist in the Cosmos DB database "
                    f"{self.name}: declare it in Bicep (partition key {spec.partition_key_path})"
                ) from error
            _raise(error, f"container {spec.name}")
        paths = properties.get("partitionKey", {}).get("paths", [])
        if paths != [spec.partition_key_path]:
            raise InvalidDocument(
                f"container {spec.name} has the partition key {', '.join(paths) or 'none'}, "
                f"not {spec.partition_key_path}"
            )
        if properties.get("defaultTtl") != spec.default_ttl:
            log.warning(
                "container %s: its default TTL is %s, the code declares %s (Bicep sets it)",
                spec.name,
                properties.get("defaultTtl"),
                spec.default_ttl,
            )
        return CosmosContainer(proxy, spec, self.charges, self._executor)

    def _executor(self) -> ThreadPoolExecutor:
        """The threads the containers' `upsert_many` requests run on, made on first use."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="cosmos")
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self.client.close()


class CosmosContainer:
    """One Cosmos DB container behind the port."""

    def __init__(
        self,
        proxy: ContainerProxy,
        spec: ContainerSpec,
        charges: RequestCharges,
        executor: Callable[[], ThreadPoolExecutor] | None = None,
    ):
        self.proxy = proxy
        self.spec = spec
        self.charges = charges
        self.executor = executor or _own_executor()

    def _hook(self, operation: str) -> Callable[[Mapping[str, str], Any], None]:
        def record(headers: Mapping[str, str], _: Any) -> None:
            self.charges.record(self.spec.name, operation, headers)

        return record

    # Point operations

    def read(self, id: str, partition_key: Json) -> dict[str, Json]:
        where = self._where(id, partition_key)
        try:
            return dict(
                self.proxy.read_item(check_id(id), partition_key, response_hook=self._hook("read"))
            )
        except CosmosHttpResponseError as error:
            _raise(error, where)

    def read_many(self, keys: Sequence[tuple[str, Json]]) -> list[dict[str, Json] | None]:
        """One point read each (a read costs the fewest request units), `CONCURRENCY` at a
        time; a failure other than not found is raised once every read has ended."""

        def read(key: tuple[str, Json]) -> dict[str, Json] | None:
            try:
                return self.read(*key)
            except DocumentNotFound:
                return None

        if len(keys) <= 1:
            return [read(key) for key in keys]
        futures = [self.executor().submit(read, key) for key in keys]
        wait(futures)
        return [future.result() for future in futures]

    def create(self, document: Mapping[str, Json]) -> dict[str, Json]:
        body = self._checked(document)
        try:
            return dict(self.proxy.create_item(body, response_hook=self._hook("create")))
        except CosmosHttpResponseError as error:
            _raise(error, self._where(body["id"], self.spec.partition_key_of(body)))

    def upsert(self, document: Mapping[str, Json]) -> dict[str, Json]:
        body = self._checked(document)
        try:
            return dict(self.proxy.upsert_item(body, response_hook=self._hook("upsert")))
        except CosmosHttpResponseError as error:
            _raise(error, self._where(body["id"], self.spec.partition_key_of(body)))

    def upsert_many(self, documents: Sequence[Mapping[str, Json]]) -> list[dict[str, Json]]:
        """One upsert each (Cosmos DB has no transaction across partitions), `CONCURRENCY` at
        a time; the answers in the documents' order. A failure is raised once every request
        has ended (the others may be written: a retry of the whole is safe)."""
        if len(documents) <= 1:
            return [self.upsert(document) for document in documents]
        futures = [self.executor().submit(self.upsert, document) for document in documents]
        wait(futures)
        return [future.result() for future in futures]

    def replace(self, document: Mapping[str, Json], if_match: str | None = None) -> dict[str, Json]:
        body = self._checked(document)
        try:
            return dict(
                self.proxy.replace_item(
                    body["id"], body, response_hook=self._hook("replace"), **_condition(if_match)
                )
            )
        except CosmosHttpResponseError as error:
            _raise(error, self._where(body["id"], self.spec.partition_key_of(body)))

    def delete(self, id: str, partition_key: Json, if_match: str | None = None) -> None:
        try:
            self.proxy.delete_item(
                check_id(id),
                partition_key,
                response_hook=self._hook("delete"),
                **_condition(if_match),
            )
        except CosmosHttpResponseError as error:
            _raise(error, self._where(id, partition_key))

    def patch(
        self,
        id: str,
        partition_key: Json,
        operations: Sequence[PatchOperation],
        if_match: str | None = None,
    ) -> dict[str, Json]:
        try:
            return dict(
                self.proxy.patch_item(
                    check_id(id),
                    partition_key,
                    _patch_operations(operations),
                    response_hook=self._hook("patch"),
                    **_condition(if_match),
                )
            )
        except CosmosHttpResponseError as error:
            _raise(error, self._where(id, partition_key))

    def batch(
        self, partition_key: Json, operations: Sequence[BatchOperation]
    ) -> list[dict[str, Json] | None]:
        """One transactional batch: every operation commits or none does. The first failing
        operation is raised as its error, naming its position."""
        if not operations:
            return []
        if len(operations) > MAX_BATCH_OPERATIONS:
            raise InvalidDocument(f"a batch has at most {MAX_BATCH_OPERATIONS} operations")
        steps = [self._batch_step(i, partition_key, s) for i, s in enumerate(operations)]
        try:
            results = self.proxy.execute_item_batch(
                steps, partition_key=partition_key, response_hook=self._hook("batch")
            )
        except CosmosBatchOperationError as error:
            index = error.error_index if isinstance(error.error_index, int) else 0
            failed = error.operation_responses[index] if error.operation_responses else {}
            status = int(failed.get("statusCode", error.status_code or 400))
            kind = operations[index].kind if index < len(operations) else "?"
            _raise_status(status, f"batch operation {index} ({kind})", str(error.message or ""))
        except CosmosHttpResponseError as error:
            _raise(error, f"a batch in {self.spec.name} (partition key {partition_key!r})")
        return [
            None if step.kind == "delete" else dict(result.get("resourceBody") or {})
            for step, result in zip(operations, results, strict=True)
        ]

    def _batch_step(
        self, index: int, partition_key: Json, step: BatchOperation
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        where = f"batch operation {index} ({step.kind})"
        options: dict[str, Any] = {} if step.if_match is None else {"if_match_etag": step.if_match}
        try:
            if step.kind in ("create", "upsert", "replace"):
                if step.document is None:
                    raise InvalidDocument("needs a document")
                body = self._checked(step.document)
                if self.spec.partition_key_of(body) != partition_key:
                    raise InvalidDocument("its partition key is not the batch's")
                arguments: tuple[Any, ...] = (
                    (body,) if step.kind != "replace" else (body["id"], body)
                )
                return step.kind, arguments, options
            if step.id is None:
                raise InvalidDocument("needs an id")
            if step.kind == "patch":
                return "patch", (check_id(step.id), _patch_operations(step.patch)), options
            if step.kind in ("delete", "read"):
                return step.kind, (check_id(step.id),), options
            raise InvalidDocument(f"unknown batch operation {step.kind!r}")
        except InvalidDocument as error:
            raise InvalidDocument(f"{where}: {error}") from error

    # Queries and the change feed

    def query(self, query: Query, continuation: str | None = None) -> Page:
        if query.partition_key is None and not query.cross_partition:
            raise InvalidDocument("a query without a partition key must be cross_partition")
        if not 1 <= query.page_size <= 1000:
            raise InvalidDocument("page_size is 1 to 1000")
        sql, parameters = to_sql(query)
        scope: dict[str, Any] = (
            {"partition_key": query.partition_key}
            if query.partition_key is not None
            else {"enable_cross_partition_query": True}
        )
        try:
            pages: Any = self.proxy.query_items(  # a page iterator, with its continuation
                sql,
                parameters=parameters,
                max_item_count=query.page_size,
                response_hook=self._hook("query"),
                continuation_token_limit=CONTINUATION_LIMIT_KB,
                **scope,
            ).by_page(continuation)
            documents = [dict(item) for item in next(pages, [])]
            token = pages.continuation_token
        except CosmosHttpResponseError as error:
            if continuation is not None and error.status_code == 400:
                raise InvalidDocument(
                    f"the query's continuation was refused: {_message(error)}"
                ) from error
            _raise(error, f"a query of {self.spec.name}")
        except (ValueError, TypeError) as error:  # the SDK parses composite continuations
            raise InvalidDocument(f"the query's continuation was refused: {error}") from error
        return Page(documents, token or None)

    def changes(
        self,
        continuation: str | None = None,
        max_items: int = 100,
        partition_key: Json = None,
    ) -> ChangePage:
        """The change feed's next page (latest version of each document, in the order of their
        last write within a partition key range), from the beginning or a continuation."""
        options: dict[str, Any] = {"max_item_count": max(1, max_items)}
        if continuation is not None:
            options["continuation"] = continuation
        else:
            options["start_time"] = "Beginning"
            if partition_key is not None:
                options["partition_key"] = partition_key
        try:
            pages: Any = self.proxy.query_items_change_feed(
                response_hook=self._hook("changes"), **options
            ).by_page()
            documents = [dict(item) for item in next(pages, [])]
            token = pages.continuation_token
        except CosmosHttpResponseError as error:
            _raise(error, f"the change feed of {self.spec.name}")
        except (ValueError, TypeError, KeyError) as error:
            raise InvalidDocument(f"the change feed's continuation was refused: {error}") from error
        changes = [Change(document, int(document.get("_lsn", 0))) for document in documents]
        return ChangePage(changes, str(token) if token else (continuation or ""))

    def purge_expired(self) -> int:
        """Nothing to do: Cosmos DB deletes expired documents itself, in the background, and
        hides them from reads and queries at once. Returns 0."""
        return 0

    # Helpers

    def _checked(self, document: Mapping[str, Json]) -> dict[str, Json]:
        if not isinstance(document, Mapping):
            raise InvalidDocument("a document is a JSON object")
        check_id(document.get("id"))
        self.spec.partition_key_of(document)
        return _json_object(document)

    def _where(self, id: Json, partition_key: Json) -> str:
        return f"{self.spec.name}/{id!r} (partition key {partition_key!r})"


def _json_object(document: Mapping[str, Json]) -> dict[str, Json]:
    """The document as plain JSON, refusing what JSON cannot hold (NaN, sets) before it
    leaves the process, as the embedded adapter does."""
    try:
        text = json.dumps(document, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise InvalidDocument(f"not JSON: {error}") from error
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(
            f"the document {document.get('id')!r} is over {MAX_DOCUMENT_BYTES // 2**20} MB"
        )
    value: dict[str, Json] = json.loads(text)
    return value


def _condition(if_match: str | None) -> dict[str, Any]:
    if if_match is None:
        return {}
    return {"etag": if_match, "match_condition": MatchConditions.IfNotModified}


def _patch_operations(operations: Sequence[PatchOperation]) -> list[dict[str, Json]]:
    if not operations:
        raise InvalidDocument("a patch needs at least one operation")
    if len(operations) > 10:
        raise InvalidDocument("a patch has at most 10 operations (Cosmos DB's limit)")
    steps: list[dict[str, Json]] = []
    for operation in operations:
        if operation.op not in _PATCH_OPS:
            raise InvalidDocument(f"unknown patch operation {operation.op!r}")
        step: dict[str, Json] = {"op": _PATCH_OPS[operation.op], "path": operation.path}
        if operation.op != "remove":
            step["value"] = operation.value
        steps.append(step)
    return steps


def _message(error: CosmosHttpResponseError) -> str:
    return str(error.message or error.reason or error.status_code).splitlines()[0][:300]


def _raise(error: CosmosHttpResponseError, where: str) -> NoReturn:
    if error.status_code == 429:
        headers = error.headers or {}
        try:
            retry_after = float(headers.get("x-ms-retry-after-ms", 1000)) / 1000
        except (TypeError, ValueError):
            retry_after = 1.0
        raise Throttled(f"{where}: Cosmos DB is throttling (429)", retry_after) from error
    _raise_status(int(error.status_code or 500), where, _message(error), error)


def _raise_status(
    status: int, where: str, message: str, cause: Exception | None = None
) -> NoReturn:
    kinds: dict[int, Callable[[str], DocumentStoreError]] = {
        404: lambda m: DocumentNotFound(f"{where} {m}".strip()),
        409: lambda m: DocumentConflict(f"{where} exists"),
        412: lambda m: PreconditionFailed(f"{where} changed: its etag is no longer the one given"),
        400: lambda m: InvalidDocument(f"{where}: {m}"),
        413: lambda m: InvalidDocument(f"{where}: the document is too large ({m})"),
        429: lambda m: Throttled(f"{where}: Cosmos DB is throttling (429)", 1.0),
    }
    if status in kinds:
        raise kinds[status](message) from cause
    raise DocumentStoreError(f"{where}: Cosmos DB answered {status}: {message}") from cause
