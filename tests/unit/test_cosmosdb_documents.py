"""Documents to and from functions, as the worker's Cosmos DB converter gives and takes them."""

from __future__ import annotations

from typing import Any

import azure.functions as func
import pytest

from devhost.cosmosdb.documents import (
    OutputDocumentError,
    check_annotation,
    output_documents,
    to_function_value,
)
from devhost.cosmosdb.options import CosmosDBBindingError

pytestmark = pytest.mark.unit


def test_documents_reach_the_function_as_the_converter_decodes_them() -> None:
    batch = to_function_value([{"id": "a", "n": 1}, {"id": "b", "nested": {"x": [1]}}], None)
    assert isinstance(batch, func.DocumentList)
    assert all(isinstance(document, func.Document) for document in batch)
    assert [document.to_dict() for document in batch] == [
        {"id": "a", "n": 1},
        {"id": "b", "nested": {"x": [1]}},
    ]
    one = to_function_value({"id": "a"}, func.DocumentList)
    assert isinstance(one, func.DocumentList) and one[0]["id"] == "a"  # a list of one
    assert to_function_value(None, func.DocumentList) is None
    assert to_function_value([{"id": "a"}], str) == '[{"id": "a"}]'


@pytest.mark.parametrize("annotation", [None, func.DocumentList, str])
def test_the_annotations_the_worker_takes_are_taken(annotation: Any) -> None:
    check_annotation(annotation, "here")


@pytest.mark.parametrize("annotation", [func.Document, dict, list[func.Document], bytes])
def test_other_annotations_are_refused_as_the_worker_refuses_them(annotation: Any) -> None:
    with pytest.raises(CosmosDBBindingError) as raised:
        check_annotation(annotation, "here")
    assert str(raised.value).startswith(
        "here: the Python worker gives Cosmos DB documents as func.DocumentList (or str), not "
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        (func.Document.from_dict({"id": "a"}), [{"id": "a"}]),
        (func.DocumentList([func.Document.from_dict({"id": "a"})]), [{"id": "a"}]),
        ({"id": "a"}, [{"id": "a"}]),
        ([{"id": "a"}, {"id": "b"}], [{"id": "a"}, {"id": "b"}]),
        ('{"id": "a"}', [{"id": "a"}]),
        (b'[{"id": "a"}]', [{"id": "a"}]),
        ([], []),
    ],
)
def test_output_values_become_documents(value: Any, expected: list[dict[str, Any]]) -> None:
    assert output_documents(value, "out") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "the string set is not JSON"),
        (42, "cannot write a int as documents"),
        ('"text"', "cannot write a str as documents"),
        ([{"id": "a"}, "b"], "item 1 is a str, not a document"),
    ],
)
def test_output_values_that_are_not_documents_are_refused(value: Any, message: str) -> None:
    with pytest.raises(OutputDocumentError, match=message):
        output_documents(value, "out")
