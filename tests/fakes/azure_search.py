"""A loopback Azure AI Search service: the REST endpoints the answer service's adapter calls.

It speaks the data plane's documented wire format (api-version required, `api-key` header):

- `PUT /indexes('{name}')`: create or update an index from its definition (201, then 200),
  answered with the definition and an `@odata.etag`;
- `POST /indexes('{name}')/docs/search.index`: `{"value": [{"@search.action": ..., ...}]}`
  (upload, merge, mergeOrUpload, delete), answered with `{"value": [{"key", "status",
  "errorMessage", "statusCode"}]}`; a field the index does not define is a 400, as in Azure;
- `POST /indexes('{name}')/docs/search.post.search`: `search` ("*" for all), `select` (comma
  separated), `orderby` (sortable fields), `top` (default 50), `skip`, `vectorQueries`
  (`kind: vector`), answered with
  `{"value": [{...selected fields, "@search.score"}]}`. Text scoring counts the query's words
  in the searchable fields; with a vector query, the text and vector rankings are fused by
  reciprocal rank fusion, as Azure's hybrid search does.

An unknown index is a 404 with Azure's error body. Every request is in `server.requests`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tests.fakes.loopback import LoopbackServer, Request, Response

API_KEY = "search-key-loopback"
_INDEX = r"/indexes\((?:'|%27)(?P<index>[^'%/]+)(?:'|%27)\)"


def _error(status: int, message: str, code: str = "") -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


class FakeAzureSearch:
    """Start with `with FakeAzureSearch() as search:`; point the SDK at `search.url` with
    `AzureKeyCredential(API_KEY)`. `indexes` holds the definitions, `documents` each index's
    documents by key."""

    def __init__(self, *, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.indexes: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, dict[str, dict[str, Any]]] = {}
        self._server = LoopbackServer()
        self._server.route("PUT", _INDEX, self._put_index)
        self._server.route("POST", _INDEX + r"/docs/search\.index", self._index_documents)
        self._server.route("POST", _INDEX + r"/docs/search\.post\.search", self._search)
        self.url = self._server.url
        self.requests = self._server.requests

    def __enter__(self) -> FakeAzureSearch:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def received(self, operation: str) -> list[Request]:
        """The requests of one operation: "index" (PUT), "search.index" or "search.post.search"."""
        if operation == "index":
            return [r for r in self.requests if r.method == "PUT"]
        return [r for r in self.requests if r.path.endswith(f"/docs/{operation}")]

    def _refused(self, request: Request) -> Response | None:
        if "api-version" not in request.query:
            return _error(400, "The api-version query parameter (api-version) is missing.")
        if request.headers.get("api-key") != self.api_key:
            return _error(403, "Forbidden")
        return None

    def _fields(self, index: str) -> dict[str, dict[str, Any]]:
        return {field["name"]: field for field in self.indexes[index]["fields"]}

    def _put_index(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused:
            return refused
        name = request.params["index"]
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("name") != name:
            return _error(400, "The index name in the body must match the URL.")
        keys = [f for f in body.get("fields", []) if f.get("key")]
        if len(keys) != 1 or keys[0].get("type") != "Edm.String":
            return _error(400, "The index must have exactly one key field of type Edm.String.")
        created = name not in self.indexes
        self.indexes[name] = body
        self.documents.setdefault(name, {})
        return Response(201 if created else 200, {**body, "@odata.etag": '"0x1"'})

    def _index_documents(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused:
            return refused
        index = request.params["index"]
        if index not in self.indexes:
            return _error(404, f"The index '{index}' for service 'loopback' was not found.")
        fields = self._fields(index)
        key_name = next(name for name, field in fields.items() if field.get("key"))
        actions = (request.body or {}).get("value", [])
        for action in actions:
            unknown = set(action) - set(fields) - {"@search.action"}
            if unknown:
                return _error(
                    400,
                    f"The request is invalid. Details: The property '{sorted(unknown)[0]}' "
                    "does not exist on type 'search.documentFields'.",
                )
            for name, value in action.items():
                dimensions = fields.get(name, {}).get("dimensions")
                if dimensions is not None and len(value) != dimensions:
                    return _error(
                        400,
                        f"The vector field '{name}' must have {dimensions} dimensions, "
                        f"not {len(value)}.",
                    )
        stored = self.documents[index]
        results = []
        for action in actions:
            kind = action.get("@search.action", "upload")
            key = str(action.get(key_name))
            document = {k: v for k, v in action.items() if k != "@search.action"}
            if kind == "delete":
                stored.pop(key, None)
                status = 200
            elif kind in ("merge", "mergeOrUpload") and key in stored:
                stored[key] = {**stored[key], **document}
                status = 200
            elif kind == "merge":
                results.append(
                    {
                        "key": key,
                        "status": False,
                        "errorMessage": "Document not found.",
                        "statusCode": 404,
                    }
                )
                continue
            else:
                status = 200 if key in stored else 201
                stored[key] = document
            results.append({"key": key, "status": True, "errorMessage": None, "statusCode": status})
        failed = any(not r["status"] for r in results)
        return Response(207 if failed else 200, {"value": results})

    def _search(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused:
            return refused
        index = request.params["index"]
        if index not in self.indexes:
            return _error(404, f"The index '{index}' for service 'loopback' was not found.")
        body = request.body if isinstance(request.body, dict) else {}
        fields = self._fields(index)
        select = body.get("select")
        chosen = (
            [name.strip() for name in select.split(",")]
            if isinstance(select, str)
            else list(select or [name for name, f in fields.items() if f.get("retrievable", True)])
        )
        unknown = [name for name in chosen if name not in fields]
        if unknown:
            return _error(
                400, f"Invalid expression: Could not find a property named '{unknown[0]}'."
            )
        for query in body.get("vectorQueries") or []:
            dimensions = fields.get(query.get("fields"), {}).get("dimensions")
            if dimensions is None or len(query.get("vector") or []) != dimensions:
                return _error(400, "The vector query does not match a vector field's dimensions.")
        documents = list(self.documents[index].values())
        ranked = self._rank(documents, fields, body)
        for clause in reversed(str(body.get("orderby") or "").split(",")):
            name, _, direction = clause.strip().partition(" ")
            if not name:
                continue
            if not fields.get(name, {}).get("sortable"):
                return _error(400, f"The field '{name}' is not sortable.")
            ranked.sort(key=lambda entry: str(entry[0].get(name)), reverse=direction == "desc")
        skip, top = int(body.get("skip") or 0), int(body.get("top") or 50)
        value = [
            {**{name: doc.get(name) for name in chosen}, "@search.score": score}
            for doc, score in ranked[skip : skip + top]
        ]
        return Response(200, {"value": value})

    @staticmethod
    def _rank(
        documents: list[dict[str, Any]], fields: dict[str, dict[str, Any]], body: dict[str, Any]
    ) -> list[tuple[dict[str, Any], float]]:
        text = str(body.get("search") or "*").strip()
        searchable = [
            n for n, f in fields.items() if f.get("searchable") and f["type"] == "Edm.String"
        ]
        if text == "*":
            keyword = [(i, 1.0) for i in range(len(documents))]
        else:
            words = re.findall(r"\w+", text.lower())
            contents = [
                re.findall(r"\w+", " ".join(str(doc.get(n) or "") for n in searchable).lower())
                for doc in documents
            ]
            # tf-idf: rare words weigh more, as they do in Azure's BM25
            weight = {
                word: math.log((1 + len(contents)) / (1 + sum(word in c for c in contents)))
                for word in words
            }
            scored = []
            for i, content in enumerate(contents):
                score = sum(content.count(word) * weight[word] for word in words)
                if score > 0:
                    scored.append((i, score))
            keyword = sorted(scored, key=lambda entry: -entry[1])
        vector_queries = body.get("vectorQueries") or []
        if not vector_queries:
            return [(documents[i], score) for i, score in keyword]
        rankings = [[i for i, _ in keyword]]
        for query in vector_queries:
            if query.get("kind") != "vector":
                continue
            field, k = query["fields"], int(query.get("k") or 50)
            near = sorted(
                (
                    (i, _cosine(doc[field], query["vector"]))
                    for i, doc in enumerate(documents)
                    if isinstance(doc.get(field), list)
                ),
                key=lambda entry: -entry[1],
            )[:k]
            rankings.append([i for i, _ in near])
        fused: dict[int, float] = {}
        for ranking in rankings:
            for rank, i in enumerate(ranking, start=1):
                fused[i] = fused.get(i, 0.0) + 1.0 / (60 + rank)
        return [(documents[i], score) for i, score in sorted(fused.items(), key=lambda e: -e[1])]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0
