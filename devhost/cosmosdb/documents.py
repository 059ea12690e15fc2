"""Documents to and from what a function sees, as the Python worker converts them.

The host hands the worker JSON (an array of documents for the trigger and a query; one
document, or null, for a point read) and `azure.functions`' Cosmos DB converter decodes it:
always into a `func.DocumentList` (a point read gives a list of one), or None for null. The
worker accepts only `func.DocumentList` (or `str`, the JSON itself) as the parameter's
annotation; the devhost refuses the others as clearly. What a function sets on an output
binding becomes documents to upsert: a `func.Document`, a `func.DocumentList`, a dict, a list
of dicts, or JSON text of an object or an array of objects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from azure.functions import DocumentList, meta
from azure.functions.cosmosdb import CosmosDBConverter

from devhost.cosmosdb.options import CosmosDBBindingError


class OutputDocumentError(TypeError):
    """A value set on a cosmosDB output binding that is not documents."""


def check_annotation(annotation: Any, at: str) -> None:
    """Refuse a parameter type the worker would refuse for a Cosmos DB binding."""
    if annotation is None or annotation is str:
        return
    if isinstance(annotation, type) and issubclass(annotation, DocumentList):
        return
    name = annotation.__qualname__ if isinstance(annotation, type) else repr(annotation)
    raise CosmosDBBindingError(
        f"{at}: the Python worker gives Cosmos DB documents as func.DocumentList (or str), "
        f"not {name}; a point read too gives a func.DocumentList of one"
    )


def to_function_value(found: Any, annotation: Any) -> Any:
    """What the function receives for documents the host would send as JSON: `found` is a
    list of documents, one document, or None."""
    if found is None:
        return None
    text = json.dumps(found)
    if annotation is str:
        return text
    return CosmosDBConverter.decode(meta.Datum(text, "json"), trigger_metadata=None)


def output_documents(value: Any, at: str) -> list[dict[str, Any]]:
    """The documents to upsert for a value set on an output binding (none for None)."""
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise OutputDocumentError(f"{at}: the string set is not JSON: {error}") from None
    if isinstance(value, Mapping):
        return [dict(value)]
    if isinstance(value, Sequence) and not isinstance(value, str):
        documents = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise OutputDocumentError(
                    f"{at}: item {index} is a {type(item).__name__}, not a document (an object)"
                )
            documents.append(dict(item))
        return documents
    raise OutputDocumentError(
        f"{at}: cannot write a {type(value).__name__} as documents; set a func.Document, a "
        "func.DocumentList, a dict, a list of dicts or JSON text"
    )
