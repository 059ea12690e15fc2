"""Streaming landing-file readers: records with line numbers, rejects that never stop the file."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.files.reader import file_format, read_records
from shared.files.records import MAX_RECORD_BYTES, FileChunk, UnsupportedFileType

pytestmark = pytest.mark.unit


def _read(data: bytes, name: str, chunk_records: int = 1000) -> tuple[list[Any], list[Any]]:
    chunks = list(read_records(io.BytesIO(data), name, chunk_records=chunk_records))
    records = [(r.line, r.data) for c in chunks for r in c.records]
    rejects = [(r.line, r.reason) for c in chunks for r in c.rejects]
    return records, rejects


class _OneWay(io.RawIOBase):
    """A stream that cannot seek, as a blob trigger's may be."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        chunk = self._inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


# --- CSV ---------------------------------------------------------------------------------


def test_csv_rows_become_records_with_their_line_numbers() -> None:
    data = b'\xef\xbb\xbfdevice_id,rpm,note\r\nd1,1500,\r\n\r\nd2,1600,"two\nlines"\nd3,1700,x\n'
    records, rejects = _read(data, "t.csv")
    assert records == [
        (2, {"device_id": "d1", "rpm": "1500", "note": None}),
        (4, {"device_id": "d2", "rpm": "1600", "note": "two\nlines"}),
        (6, {"device_id": "d3", "rpm": "1700", "note": "x"}),
    ]
    assert rejects == []


def test_csv_bad_rows_are_rejected_with_their_line_and_the_rest_is_read() -> None:
    data = b'a,b\n1,2\n1,2,3\n\xff\xfe,9\n5,"unclosed" x\n7,8\n'
    records, rejects = _read(data, "t.CSV")
    assert [line for line, _ in records] == [2, 6]
    assert rejects[0] == (3, "has 3 fields, the header has 2")
    assert rejects[1] == (4, "not UTF-8 at byte 0")
    assert rejects[2][0] == 5 and rejects[2][1].startswith("malformed CSV")


def test_a_csv_line_over_1_mib_is_rejected_without_being_held() -> None:
    data = b"a,b\n" + b"x" * (MAX_RECORD_BYTES + 10) + b",1\n3,4\n"
    records, rejects = _read(data, "t.csv")
    assert records == [(3, {"a": "3", "b": "4"})]
    assert rejects == [(2, "line longer than 1 MiB")]


@pytest.mark.parametrize("data", [b"", b"\n\n", b"a,,c\n1,2,3\n", b"a,a\n1,2\n"])
def test_a_csv_without_a_usable_header_is_one_reject(data: bytes) -> None:
    records, rejects = _read(data, "t.csv")
    assert records == []
    assert len(rejects) == 1 and ("header" in rejects[0][1])


# --- JSON and NDJSON -----------------------------------------------------------------------


def test_a_json_array_yields_each_object_with_its_start_line() -> None:
    data = b'[\n  {"a": 1, "s": "x,]}\\"["},\n  {"a": 2,\n   "b": [1, {"c": 3}]}\n]\n'
    records, rejects = _read(data, "t.json")
    assert records == [(2, {"a": 1, "s": 'x,]}"['}), (3, {"a": 2, "b": [1, {"c": 3}]})]
    assert rejects == []


def test_one_json_object_is_one_record() -> None:
    assert _read(b'  {"a": {"b": 1}}  \n', "t.json") == ([(1, {"a": {"b": 1}})], [])


def test_bad_json_elements_are_rejected_and_the_rest_is_read() -> None:
    data = b'[{"a": 1},\n 42,\n {"a": tru},\n {"a": [1}, \n {"a": 5}]'
    records, rejects = _read(data, "t.json")
    assert records == [(1, {"a": 1}), (5, {"a": 5})]
    assert [line for line, _ in rejects] == [2, 3, 4]
    assert rejects[0][1] == "not a JSON object but int"
    assert rejects[1][1].startswith("invalid JSON")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'"just a string"', "holds an array of objects or one object"),
        (b'[{"a": 1}', "truncated"),
        (b'[{"a": 1},]', "trailing comma"),
        (b'[{"a": 1},,{"a": 2}]', "empty element"),
        (b'[{"a": 1}] [', "after the end"),
        (b'[{"a": 1}}', "closes nothing"),
    ],
)
def test_a_malformed_json_file_is_rejected_with_a_reason(data: bytes, problem: str) -> None:
    _, rejects = _read(data, "t.json")
    assert problem in rejects[-1][1]


def test_an_empty_json_array_has_no_records() -> None:
    assert _read(b"[ \n ]", "t.json") == ([], [])


def test_a_json_element_over_1_mib_is_rejected_but_not_the_file() -> None:
    big = json.dumps({"x": "y" * (MAX_RECORD_BYTES + 1)}).encode()
    records, rejects = _read(b'[{"a": 1},\n' + big + b',\n{"a": 2}]', "t.json")
    assert records == [(1, {"a": 1}), (3, {"a": 2})]
    assert rejects == [(2, "record larger than 1 MiB")]


def test_ndjson_lines_become_records_and_bad_lines_rejects() -> None:
    data = b'{"a": 1}\n\n[1]\n{"a": \n{"a": 2}'
    records, rejects = _read(data, "t.ndjson")
    assert records == [(1, {"a": 1}), (5, {"a": 2})]
    assert [line for line, _ in rejects] == [3, 4]
    assert _read(data, "t.jsonl") == (records, rejects)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.text(max_size=8),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3)
                ),
                max_leaves=8,
            ),
            max_size=4,
        ),
        max_size=8,
    ),
    st.sampled_from([0, 2, None]),
)
def test_any_json_array_of_objects_reads_back_whole(
    objects: list[dict[str, Any]], indent: int | None
) -> None:
    data = json.dumps(objects, indent=indent).encode()
    records, rejects = _read(data, "t.json", chunk_records=3)
    assert rejects == []
    assert [r for _, r in records] == objects


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes_never_crash_a_reader(data: bytes) -> None:
    for name in ("t.json", "t.ndjson", "t.csv", "t.parquet"):
        for chunk in read_records(io.BytesIO(data), name, chunk_records=2):
            assert isinstance(chunk, FileChunk)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{},:"\\ 1a\n', max_size=120))
def test_json_made_of_structure_characters_never_crashes(text: str) -> None:
    records, rejects = _read(text.encode(), "t.json", chunk_records=2)
    assert all(isinstance(data, dict) for _, data in records)
    assert all(line >= 0 for line, _ in rejects)


def test_deep_nesting_is_a_reject_not_a_crash() -> None:
    deep = b"[" + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"]"
    records, rejects = _read(deep, "t.json")
    assert len(records) + len(rejects) == 1


# --- Parquet -------------------------------------------------------------------------------


def _parquet(rows: int) -> bytes:
    sink = io.BytesIO()
    table = pa.table({"device_id": [f"d{i}" for i in range(rows)], "rpm": list(range(rows))})
    pq.write_table(table, sink, row_group_size=4)
    return sink.getvalue()


@pytest.mark.parametrize("seekable", [True, False])
def test_parquet_rows_come_in_batches_numbered_from_one(seekable: bool) -> None:
    data = _parquet(10)
    stream = io.BytesIO(data) if seekable else io.BufferedReader(_OneWay(data))
    chunks = list(read_records(stream, "t.parquet", chunk_records=3))
    records = [(r.line, r.data) for c in chunks for r in c.records]
    assert records[0] == (1, {"device_id": "d0", "rpm": 0})
    assert [line for line, _ in records] == list(range(1, 11))
    assert max(len(c) for c in chunks) <= 4


def test_a_file_that_is_not_parquet_is_one_reject() -> None:
    assert _read(b"PAR1 but not really", "t.parquet")[1][0][0] == 0


# --- the dispatcher and memory -------------------------------------------------------------


def test_unknown_extensions_are_refused_by_name() -> None:
    assert file_format("landing/payment.transaction/x.NDJSON") == ".ndjson"
    with pytest.raises(UnsupportedFileType, match="x.xml"):
        file_format("x.xml")


def _peak_bytes_reading(rows: int) -> int:
    import tracemalloc

    row = b"acct-000001,12.34,EUR,merchant-0001,5411,NL,pos\n"
    data = io.BytesIO(b"account_id,amount,currency,merchant_id,mcc,country,channel\n" + row * rows)
    tracemalloc.start()
    seen = 0
    for chunk in read_records(data, "big.csv", chunk_records=500):
        assert len(chunk) <= 500
        seen += len(chunk.records)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == rows
    return peak


def test_memory_does_not_grow_with_the_file() -> None:
    small, large = _peak_bytes_reading(10_000), _peak_bytes_reading(40_000)
    assert large < small * 1.5  # four times the file, about the same memory: one chunk at a time
    assert large < 40_000 * 48 / 2  # and well under the 1.9 MB being read
