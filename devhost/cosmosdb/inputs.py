"""The `cosmosDB` input binding: a point read, a query, or the whole container.

- `id` (with `partitionKey`): the document, or None when there is none, as Azure gives null.
  Both may hold binding expressions (`{id}`, `{Query.id}`); the partition key value is the
  resolved text, a string, as the extension's `PartitionKey` is. Without `partitionKey` the
  read looks among the documents that have no partition key value.
- `sqlQuery` (the subset `embedded.documents.sql` reads), within `partitionKey` when given:
  every matching document, `{name}` in the query bound as the parameter `@name`.
- neither: every document of the container (of the partition, with `partitionKey`).

A point read on a missing container gives None, as Azure's does (a 404 either way); a query
on one fails the invocation, naming the container.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

from devhost.cosmosdb.databases import Databases
from devhost.cosmosdb.documents import check_annotation, to_function_value
from devhost.cosmosdb.expressions import (
    BindingExpressionError,
    binding_data,
    query_with_parameters,
    resolve,
)
from devhost.cosmosdb.options import InputOptions, where
from devhost.indexing import BindingSpec, FunctionSpec
from embedded.documents.model import DocumentNotFound, DocumentStoreError, Json, Query
from embedded.documents.sql import parse_query

MAX_PAGE = 1000
ALL = "SELECT * FROM c"


class CosmosDBInputError(RuntimeError):
    """An input binding could not be read; the invocation fails with the reason."""


class InputReader:
    """Reads cosmosDB input bindings for an invocation, off the event loop."""

    def __init__(self, databases: Databases, io: Executor) -> None:
        self._databases = databases
        self._io = io

    async def __call__(self, binding: BindingSpec, function: FunctionSpec, trigger: Any) -> Any:
        at = where(function, binding)
        annotation = function.annotations.get(binding.name)
        check_annotation(annotation, at)
        options = InputOptions.from_binding(function, binding)
        data = binding_data(trigger)
        try:
            partition = _optional(options.partition_key, data)
            if options.id is not None:
                read = functools.partial(self._read, options, resolve(options.id, data), partition)
            else:
                sql, parameters = query_with_parameters(options.sql_query or ALL, data)
                read = functools.partial(self._query, options, sql, parameters, partition, at)
        except BindingExpressionError as error:
            raise CosmosDBInputError(f"{at}: {error}") from None
        found = await asyncio.get_running_loop().run_in_executor(self._io, read)
        return to_function_value(found, annotation)

    def _read(self, options: InputOptions, id: str, partition: str | None) -> Json:
        container = self._databases.existing(options.database, options.container)
        if container is None:
            return None
        try:
            return container.read(id, partition)
        except DocumentNotFound:
            return None
        except DocumentStoreError as error:
            raise CosmosDBInputError(f"reading {id!r}: {error}") from error

    def _query(
        self,
        options: InputOptions,
        sql: str,
        parameters: list[dict[str, Any]],
        partition: str | None,
        at: str,
    ) -> list[Json]:
        container = self._databases.existing(options.database, options.container)
        if container is None:
            raise CosmosDBInputError(
                f"{at}: the container {options.container!r} (in database "
                f"{options.database!r}) does not exist"
            )
        try:
            parsed = parse_query(sql, parameters)
            query = Query(
                where=parsed.where,
                order_by=parsed.order_by,
                partition_key=partition,
                cross_partition=partition is None,
                page_size=MAX_PAGE,
            )
            documents: list[Json] = []
            continuation: str | None = None
            while True:
                page = container.query(query, continuation)
                documents.extend(page.documents)
                continuation = page.continuation
                if continuation is None:
                    return documents
        except DocumentStoreError as error:
            raise CosmosDBInputError(f"{at}: the query {sql!r} failed: {error}") from error


def _optional(template: str | None, data: Mapping[str, Any]) -> str | None:
    return None if template is None else resolve(template, data)
