"""The `cosmosDB` output binding: what a function sets is upserted into the container.

Each document is upserted on its own, in order, as the extension's collector does (a failure
leaves the ones before it written). A missing container is created with the binding's
`partitionKey` path when `createIfNotExists` is true; otherwise the invocation fails with
Azure's message. A document the store refuses (no `id`, a bad id, too large, not JSON) fails
the invocation with the store's message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from devhost.cosmosdb.databases import ContainerMissing, Databases
from devhost.cosmosdb.documents import output_documents
from devhost.cosmosdb.options import OutputOptions, where
from devhost.indexing import BindingSpec, FunctionSpec
from embedded.documents.model import ContainerSpec, DocumentStoreError

log = logging.getLogger("devhost.cosmosdb")


class CosmosDBOutputError(RuntimeError):
    """Documents set on an output binding could not be written; the invocation fails."""


class OutputSink:
    """Delivers cosmosDB output values after the function returns; `written(database,
    container)` is told of each write, so that triggers on that container wake at once."""

    def __init__(
        self, databases: Databases, io: Executor, written: Callable[[str, str], None]
    ) -> None:
        self._databases = databases
        self._io = io
        self._written = written

    async def __call__(self, binding: BindingSpec, function: FunctionSpec, value: Any) -> None:
        at = where(function, binding)
        options = OutputOptions.from_binding(function, binding)
        documents = output_documents(value, at)
        if not documents:
            return
        write = functools.partial(self._upsert, options, documents, at)
        count = await asyncio.get_running_loop().run_in_executor(self._io, write)
        self._written(options.database, options.container)
        log.debug("%s: upserted %d documents into %s", at, count, options.container)

    def _upsert(self, options: OutputOptions, documents: list[dict[str, Any]], at: str) -> int:
        spec = ContainerSpec(options.container, options.partition_key_path)
        try:
            container = self._databases.container(
                options.database, spec, create=options.create_if_not_exists
            )
        except ContainerMissing as error:
            raise CosmosDBOutputError(
                f"{at}: {error}. To automatically create the container, set "
                "'createIfNotExists' to 'true'"
            ) from None
        for index, document in enumerate(documents):
            try:
                container.upsert(document)
            except DocumentStoreError as error:
                item = f"document {index}" if len(documents) > 1 else "the document"
                raise CosmosDBOutputError(f"{at}: {item} was refused: {error}") from error
        return len(documents)
