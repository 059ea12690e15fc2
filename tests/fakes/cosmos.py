"""A loopback Cosmos DB (NoSQL) server: the REST API the `azure-cosmos` SDK speaks, for the
operations the platform's adapter uses, over TLS on 127.0.0.1.

It follows the documented wire protocol (https://learn.microsoft.com/rest/api/cosmos-db/):
the database account at `/`, collection and partition key range reads, documents under
`/dbs/{db}/colls/{coll}/docs` with `x-ms-documentdb-partitionkey`, `If-Match` and
`x-ms-documentdb-is-upsert`, patch (`PATCH` with `{"operations": [...]}`), transactional
batches (`x-ms-cosmos-is-batch-request`, 207 with 424 for the untried steps), queries
(`application/query+json`, `x-ms-max-item-count`, `x-ms-continuation`), the change feed
(`A-IM: Incremental feed`, `If-None-Match` continuations, 304 when caught up), Entra ID
authorization (`type=aad&ver=1.0&sig=<token>`), and throttling (429 with
`x-ms-retry-after-ms`) on demand.

Storage and query semantics are the embedded document store's, reached through the SQL subset
parser: the fake proves the adapter's mapping onto the protocol, not Cosmos DB's own engine.
What it does not cover: more than one partition key range (so never a query plan, and no
splits), sessions and consistency levels, stored procedures, indexing policies, RU accounting
beyond a flat charge per request, hierarchical partition keys, and key-based auth.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.cosmos.partition_key import PartitionKey

from embedded.documents.model import (
    BatchOperation,
    ContainerSpec,
    DocumentConflict,
    DocumentNotFound,
    DocumentStoreError,
    InvalidDocument,
    PatchOperation,
    PreconditionFailed,
)
from embedded.documents.sql import parse_query
from embedded.documents.store import Container, DocumentStore
from tests.fakes.loopback import LoopbackServer, Request, Response

TOKEN = "fake-entra-token"


class FakeCredential:
    """A token credential that hands out the token the fake accepts."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(TOKEN, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(TOKEN, int(time.time()) + 3600)


CHARGE = "1.5"
_COLL = r"/dbs/(?P<db>[^/]+)/colls/(?P<coll>[^/]+)"
_STATUS = {
    DocumentNotFound: (404, "NotFound"),
    DocumentConflict: (409, "Conflict"),
    PreconditionFailed: (412, "PreconditionFailed"),
    InvalidDocument: (400, "BadRequest"),
}


class FakeCosmos:
    """Serve `database` from an embedded store at `path`; `declare` makes containers (as Bicep
    would); `throttle(n)` answers the next n document requests with 429."""

    def __init__(
        self,
        path: Path,
        tls_dir: Path,
        database: str = "platform",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = DocumentStore(path, clock) if clock else DocumentStore(path)
        self.database = database
        self.server = LoopbackServer(tls_dir=tls_dir)
        self._containers: dict[str, Container] = {}
        self._throttled = 0
        self._retry_after_ms = 10
        self._lock = threading.Lock()
        self.throttled_requests = 0
        route = self.server.route
        route("GET", r"/", self._account)
        route("GET", _COLL + "/?", self._collection)
        route("GET", _COLL + r"/pkranges/?", self._ranges)
        route("POST", _COLL + r"/docs/?", self._post)
        route("GET", _COLL + r"/docs/?", self._feed)
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            route(method, _COLL + r"/docs/(?P<id>[^/]+)/?", self._document)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def cert_path(self) -> Path:
        assert self.server.cert_path is not None
        return self.server.cert_path

    def __enter__(self) -> FakeCosmos:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.store.close()

    def declare(self, spec: ContainerSpec) -> None:
        """Create the container as a deployment would; a name taken keeps its first spec, as
        Cosmos DB keeps a container's partition key."""
        with self._lock:
            if spec.name not in self._containers:
                self._containers[spec.name] = self.store.container(spec)

    def throttle(self, requests: int, retry_after_ms: int = 10) -> None:
        with self._lock:
            self._throttled = requests
            self._retry_after_ms = retry_after_ms

    # Routes

    def _account(self, request: Request) -> Response:
        if denied := self._unauthorized(request):
            return denied
        location = [{"name": "Loopback", "databaseAccountEndpoint": self.url + "/"}]
        return self._ok(
            {
                "id": "loopback",
                "_rid": "loopback.documents.azure.com",
                "_self": "",
                "_dbs": "//dbs/",
                "writableLocations": location,
                "readableLocations": location,
                "enableMultipleWriteLocations": False,
                "userConsistencyPolicy": {"defaultConsistencyLevel": "Session"},
                "userReplicationPolicy": {"minReplicaSetSize": 1, "maxReplicasetSize": 4},
                "systemReplicationPolicy": {"minReplicaSetSize": 1, "maxReplicasetSize": 4},
                "readPolicy": {"primaryReadCoefficient": 1, "secondaryReadCoefficient": 1},
                "queryEngineConfiguration": json.dumps({"maxSqlQueryInputLength": 262144}),
            }
        )

    def _collection(self, request: Request) -> Response:
        found = self._container(request)
        if isinstance(found, Response):
            return found
        spec = found.spec
        body: dict[str, Any] = {
            "id": spec.name,
            "_rid": _rid(spec.name),
            "_self": f"dbs/{_rid(self.database)}/colls/{_rid(spec.name)}/",
            "_etag": f'"{_rid(spec.name)}"',
            "_ts": 1_700_000_000,
            "partitionKey": {"paths": [spec.partition_key_path], "kind": "Hash", "version": 2},
            "indexingPolicy": {"indexingMode": "consistent", "automatic": True},
        }
        if spec.default_ttl is not None:
            body["defaultTtl"] = spec.default_ttl
        return self._ok(body)

    def _ranges(self, request: Request) -> Response:
        found = self._container(request)
        if isinstance(found, Response):
            return found
        if request.headers.get("if-none-match"):
            return Response(304, None, {"etag": '"1"', "x-ms-request-charge": CHARGE})
        whole = {
            "id": "0",
            "_rid": _rid(found.spec.name) + "AgAAAAAAAA==",
            "minInclusive": "",
            "maxExclusive": "FF",
            "ridPrefix": 0,
            "throughputFraction": 1.0,
            "status": "online",
            "parents": [],
        }
        return self._ok(
            {"_rid": _rid(found.spec.name), "PartitionKeyRanges": [whole], "_count": 1},
            etag='"1"',
        )

    def _post(self, request: Request) -> Response:
        found = self._container(request)
        if isinstance(found, Response):
            return found
        if denied := self._throttle():
            return denied
        headers = request.headers
        try:
            if headers.get("x-ms-cosmos-is-batch-request", "").lower() == "true":
                return self._batch(found, request)
            if headers.get("x-ms-documentdb-isquery", "").lower() == "true" or headers.get(
                "content-type", ""
            ).startswith("application/query+json"):
                return self._query(found, request)
            if not isinstance(request.body, dict):
                raise InvalidDocument("the body is a JSON document")
            self._check_partition_key(found, request, found.spec.partition_key_of(request.body))
            if headers.get("x-ms-documentdb-is-upsert", "").lower() == "true":
                existed = self._exists(found, request.body)
                stored = found.upsert(request.body)
                return self._document_response(stored, 200 if existed else 201)
            return self._document_response(found.create(request.body), 201)
        except DocumentStoreError as error:
            return _error(error)

    def _document(self, request: Request) -> Response:
        found = self._container(request)
        if isinstance(found, Response):
            return found
        if denied := self._throttle():
            return denied
        id = unquote(request.params["id"])
        try:
            key = self._partition_key(request)
            if_match = request.headers.get("if-match")
            if request.method == "GET":
                return self._document_response(found.read(id, key), 200)
            if request.method == "DELETE":
                found.delete(id, key, if_match)
                return Response(204, None, self._headers())
            if request.method == "PUT":
                if not isinstance(request.body, dict) or request.body.get("id") != id:
                    raise InvalidDocument("the body's id is not the one in the path")
                self._check_partition_key(found, request, found.spec.partition_key_of(request.body))
                return self._document_response(found.replace(request.body, if_match), 200)
            return self._document_response(
                found.patch(id, key, _patch(request.body), if_match), 200
            )
        except DocumentStoreError as error:
            return _error(error)

    def _query(self, found: Container, request: Request) -> Response:
        body = request.body if isinstance(request.body, dict) else {}
        query = parse_query(body.get("query", ""), body.get("parameters") or [])
        headers = request.headers
        if "x-ms-documentdb-partitionkey" in headers:
            query = _with(query, partition_key=self._partition_key(request), cross=False)
        elif headers.get("x-ms-documentdb-query-enablecrosspartition", "").lower() != "true":
            raise InvalidDocument("a query without a partition key must enable cross-partition")
        page_size = int(headers.get("x-ms-max-item-count") or 100)
        query = _with(query, page_size=1000 if page_size < 0 else min(max(page_size, 1), 1000))
        continuation = headers.get("x-ms-continuation") or None
        page = found.query(query, continuation)
        extra = {"x-ms-continuation": page.continuation} if page.continuation else {}
        return self._ok(
            {
                "_rid": _rid(found.spec.name),
                "Documents": page.documents,
                "_count": len(page.documents),
            },
            **extra,
        )

    def _feed(self, request: Request) -> Response:
        found = self._container(request)
        if isinstance(found, Response):
            return found
        if denied := self._throttle():
            return denied
        headers = request.headers
        if headers.get("a-im", "").lower() != "incremental feed":
            return _error(
                InvalidDocument("only the change feed (A-IM: Incremental feed) is served")
            )
        after = headers.get("if-none-match", "").strip('"')
        if after in ("", "*"):
            after = "0" if after == "" else self.store.change_feed_end(found.spec.name)
        if not after.isdigit():
            return _error(InvalidDocument(f"not a change feed continuation: {after!r}"))
        limit = int(headers.get("x-ms-max-item-count") or 100)
        limit = limit if limit > 0 else 1000
        scope = (headers.get("x-ms-start-epk"), headers.get("x-ms-end-epk"))
        documents: list[dict[str, Any]] = []
        while len(documents) < limit:  # a feed range (one partition key's) filters the feed
            page = found.changes(after, max_items=limit)
            if not page.changes:
                break
            for change in page.changes:
                after = str(change.lsn)
                if _in_range(found.spec, change.document, scope):
                    documents.append(change.document)
                    if len(documents) == limit:
                        break
        etag = f'"{after}"'
        if not documents:
            return Response(304, None, self._headers(etag=etag))
        return self._ok(
            {"_rid": _rid(found.spec.name), "Documents": documents, "_count": len(documents)},
            etag=etag,
        )

    def _batch(self, found: Container, request: Request) -> Response:
        key = self._partition_key(request)
        steps = request.body if isinstance(request.body, list) else None
        if not steps:
            raise InvalidDocument("a batch is a non-empty list of operations")
        operations = [_batch_operation(step) for step in steps]
        try:
            results = found.batch(key, operations)
        except DocumentStoreError as error:
            index = _failed_index(str(error))
            status, _ = _STATUS.get(type(error), (400, "BadRequest"))
            responses = [{"statusCode": 424, "requestCharge": 0} for _ in operations]
            responses[index] = {"statusCode": status, "requestCharge": 1.0}
            return Response(207, responses, self._headers())
        return self._ok(
            [
                {
                    "statusCode": 204 if result is None else (201 if op.kind == "create" else 200),
                    "requestCharge": 1.0,
                    **({} if result is None else {"eTag": result["_etag"], "resourceBody": result}),
                }
                for op, result in zip(operations, results, strict=True)
            ]
        )

    # Helpers

    def _unauthorized(self, request: Request) -> Response | None:
        given = unquote(request.headers.get("authorization", ""))
        if given != f"type=aad&ver=1.0&sig={TOKEN}":
            return Response(
                401, {"code": "Unauthorized", "message": "an Entra ID token is required"}
            )
        return None

    def _throttle(self) -> Response | None:
        with self._lock:
            if self._throttled <= 0:
                return None
            self._throttled -= 1
            self.throttled_requests += 1
            retry_after = str(self._retry_after_ms)
        return Response(
            429,
            {"code": "TooManyRequests", "message": "Request rate is large"},
            {"x-ms-retry-after-ms": retry_after, "x-ms-substatus": "3200"},
        )

    def _container(self, request: Request) -> Container | Response:
        if denied := self._unauthorized(request):
            return denied
        if unquote(request.params["db"]) != self.database:
            return Response(404, {"code": "NotFound", "message": "no such database"})
        with self._lock:
            found = self._containers.get(unquote(request.params["coll"]))
        if found is None:
            return Response(404, {"code": "NotFound", "message": "no such collection"})
        return found

    def _partition_key(self, request: Request) -> Any:
        raw = request.headers.get("x-ms-documentdb-partitionkey")
        if raw is None:
            raise InvalidDocument("x-ms-documentdb-partitionkey is required")
        try:
            values = json.loads(raw)
        except ValueError as error:
            raise InvalidDocument("x-ms-documentdb-partitionkey is a JSON array") from error
        if not isinstance(values, list) or len(values) != 1:
            raise InvalidDocument("x-ms-documentdb-partitionkey holds one value")
        return None if values[0] == {} else values[0]

    def _check_partition_key(self, found: Container, request: Request, actual: Any) -> None:
        if "x-ms-documentdb-partitionkey" in request.headers:
            if self._partition_key(request) != actual:
                raise InvalidDocument(
                    "PartitionKey extracted from document doesn't match the one in the header"
                )

    def _exists(self, found: Container, body: dict[str, Any]) -> bool:
        try:
            found.read(str(body.get("id")), found.spec.partition_key_of(body))
        except (DocumentNotFound, InvalidDocument):
            return False
        return True

    def _document_response(self, document: dict[str, Any], status: int) -> Response:
        body = {
            **document,
            "_rid": _rid(str(document.get("id"))),
            "_self": "",
            "_attachments": "attachments/",
        }
        return Response(status, body, self._headers(etag=document["_etag"]))

    def _ok(self, body: Any, etag: str | None = None, **headers: str) -> Response:
        return Response(200, body, {**self._headers(etag=etag), **headers})

    @staticmethod
    def _headers(etag: str | None = None) -> dict[str, str]:
        headers = {
            "x-ms-request-charge": CHARGE,
            "x-ms-activity-id": str(uuid.uuid4()),
            "x-ms-session-token": "0:-1#1",
        }
        if etag is not None:
            headers["etag"] = etag
        return headers


def _in_range(
    spec: ContainerSpec, document: dict[str, Any], scope: tuple[str | None, str | None]
) -> bool:
    """Whether the document's effective partition key (the service's V2 hash, computed as the
    SDK computes it) falls in the request's `x-ms-start-epk`..`x-ms-end-epk` range."""
    start, end = scope
    if start is None or end is None:
        return True
    key = PartitionKey(path=spec.partition_key_path, kind="Hash", version=2)
    effective = key._get_epk_range_for_partition_key(spec.partition_key_of(document)).min
    return bool(start <= effective < end)


def _rid(name: str) -> str:
    return base64.b64encode(uuid.uuid5(uuid.NAMESPACE_URL, name).bytes[:8]).decode()


def _error(error: DocumentStoreError) -> Response:
    status, code = _STATUS.get(type(error), (400, "BadRequest"))
    return Response(status, {"code": code, "message": str(error)}, FakeCosmos._headers())


def _patch(body: Any) -> list[PatchOperation]:
    operations = body.get("operations") if isinstance(body, dict) else None
    if not isinstance(operations, list) or not operations:
        raise InvalidDocument("a patch is {operations: [...]}")
    steps = []
    for step in operations:
        if not isinstance(step, dict) or step.get("op") not in (
            "set",
            "add",
            "replace",
            "remove",
            "incr",
        ):
            raise InvalidDocument(f"not a patch operation: {step!r}")
        op = "set" if step["op"] == "replace" else step["op"]
        steps.append(PatchOperation(op, str(step.get("path")), step.get("value")))
    return steps


def _batch_operation(step: Any) -> BatchOperation:
    if not isinstance(step, dict):
        raise InvalidDocument("a batch operation is an object")
    kind = str(step.get("operationType", "")).lower()
    body = step.get("resourceBody")
    if_match = step.get("ifMatch")
    if kind == "patch":
        return BatchOperation("patch", id=step.get("id"), patch=_patch(body), if_match=if_match)
    if kind in ("create", "upsert", "replace"):
        return BatchOperation(kind, id=step.get("id"), document=body, if_match=if_match)  # type: ignore[arg-type]
    if kind in ("delete", "read"):
        return BatchOperation(kind, id=step.get("id"), if_match=if_match)  # type: ignore[arg-type]
    raise InvalidDocument(f"unknown batch operationType {step.get('operationType')!r}")


def _failed_index(message: str) -> int:
    prefix = "batch operation "
    if message.startswith(prefix):
        digits = message[len(prefix) :].split(" ", 1)[0]
        if digits.isdigit():
            return int(digits)
    return 0


def _with(
    query: Any,
    *,
    partition_key: Any = None,
    cross: bool | None = None,
    page_size: int | None = None,
) -> Any:
    from dataclasses import replace

    changes: dict[str, Any] = {}
    if cross is not None:
        changes.update(partition_key=partition_key, cross_partition=cross)
    if page_size is not None:
        changes["page_size"] = page_size
    return replace(query, **changes)


@contextlib.contextmanager
def container_on(adapter: str, spec: ContainerSpec, folder: Path) -> Iterator[Any]:
    """A container of `spec` on the embedded store or on the Cosmos DB adapter against this
    fake (the real SDK, over TLS), for suites that run on both."""
    from shared.documents.cosmos import CosmosDatabase

    if adapter == "embedded":
        store = DocumentStore(folder / "documents" / "platform.sqlite3")
        yield store.container(spec)
        store.close()
        return
    with FakeCosmos(folder / "cosmos.sqlite3", folder / "tls") as fake:
        fake.declare(spec)
        database = CosmosDatabase(fake.url, "platform", FakeCredential(), throttle_retries=1)
        yield database.container(spec)
        database.close()
