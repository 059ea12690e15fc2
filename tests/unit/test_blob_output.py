"""The blob output binding: path resolution, value encoding and atomic writes."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest

from devhost.blob.output import BlobOutputError, BlobOutputSink, trigger_binding_data
from devhost.blob.store import BlobStore
from devhost.indexing import BindingSpec, FunctionSpec
from devhost.invocation import Invoker

pytestmark = pytest.mark.unit


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[BlobOutputSink]:
    invoker = Invoker(max_threads=2)
    yield BlobOutputSink(BlobStore(tmp_path), invoker)
    invoker.close()


def output(path: str) -> BindingSpec:
    return BindingSpec(name="out", type="blob", direction="out", config={"path": path})


FUNCTION = Mock(spec=FunctionSpec)
FUNCTION.name = "writer"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("héllo", "héllo".encode()),
        (b"\x00\xff", b"\x00\xff"),
        (bytearray(b"abc"), b"abc"),
        (io.BytesIO(b"from a stream"), b"from a stream"),
    ],
)
async def test_values_are_written_to_literal_paths(
    sink: BlobOutputSink, tmp_path: Path, value: Any, stored: bytes
) -> None:
    await sink(output("reports/latest.txt"), FUNCTION, value)
    assert (tmp_path / "reports" / "latest.txt").read_bytes() == stored


async def test_trigger_binding_data_fills_the_path(sink: BlobOutputSink, tmp_path: Path) -> None:
    token = trigger_binding_data.set({"name": "2024/r1"})
    try:
        await sink(output("processed/{name}.json"), FUNCTION, "{}")
    finally:
        trigger_binding_data.reset(token)
    assert (tmp_path / "processed" / "2024" / "r1.json").read_text() == "{}"


async def test_an_unset_output_writes_nothing(sink: BlobOutputSink, tmp_path: Path) -> None:
    await sink(output("reports/latest.txt"), FUNCTION, None)
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("reports/latest.txt", 42, "takes str, bytes or a readable stream, not int"),
        ("processed/{name}.json", "x", "no value for the parameter {name}"),
        ("reports", "x", "'container/blob-name'"),
        ("reports/../../etc/passwd", "x", "'..' segments"),
        ("Reports/x.txt", "x", "not a valid container name"),
    ],
)
async def test_bad_outputs_fail_with_the_function_and_binding_named(
    sink: BlobOutputSink, tmp_path: Path, path: str, value: Any, fragment: str
) -> None:
    with pytest.raises(BlobOutputError) as raised:
        await sink(output(path), FUNCTION, value)
    assert "function 'writer', binding 'out' (blob)" in str(raised.value)
    assert fragment in str(raised.value)
    assert not any(tmp_path.rglob("*.txt"))
