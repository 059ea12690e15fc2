"""The `blob` output binding: write a function's `func.Out` value to the embedded store."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from typing import Any

from devhost.blob.patterns import BlobPatternError, resolve_output_path
from devhost.blob.store import BlobPathError, BlobStore
from devhost.indexing import BindingSpec, FunctionSpec
from devhost.invocation import Invoker

log = logging.getLogger("devhost.blob")

# The binding data of the blob trigger being invoked, so `{name}` in an output path
# resolves as in Azure. Set by the blob extension around each invocation.
trigger_binding_data: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "trigger_binding_data", default=None
)


class BlobOutputError(ValueError):
    """An output blob's path or value cannot be written; the invocation fails with it."""


def encode_output(value: Any, where: str) -> bytes:
    """The bytes to store for a value set on a blob output, as the worker's BlobConverter."""
    if callable(getattr(value, "read", None)):
        value = value.read()
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise BlobOutputError(
        f"{where}: a blob output takes str, bytes or a readable stream, not {type(value).__name__}"
    )


class BlobOutputSink:
    """Delivers blob output values: resolve the path, then write the file atomically."""

    def __init__(self, store: BlobStore, invoker: Invoker) -> None:
        self._store = store
        self._invoker = invoker

    async def __call__(self, binding: BindingSpec, function: FunctionSpec, value: Any) -> None:
        where = f"function {function.name!r}, binding {binding.name!r} (blob)"
        if value is None:
            return  # Out left unset or set to None: nothing to write, as in Azure
        template = binding.get("path")
        if not isinstance(template, str) or not template:
            raise BlobOutputError(f"{where}: the binding has no 'path'")
        try:
            container, name = resolve_output_path(template, trigger_binding_data.get() or {})
            target = self._store.path_of(container, name)
        except (BlobPatternError, BlobPathError) as error:
            raise BlobOutputError(f"{where}: {error}") from error
        data = encode_output(value, where)
        await self._invoker.run_blocking(
            lambda: self._store.write_atomically(container, name, data)
        )
        log.info("wrote blob %s/%s (%d bytes) to %s", container, name, len(data), target)
