"""Hostile landing files: empty, binary, wrongly encoded, huge lines, bad shapes; never a crash."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events.contracts import ContractRegistry
from shared.events.pseudonymize import Pseudonymizer
from shared.files.reader import read_records
from shared.files.records import MAX_CHUNK_BYTES, MAX_RECORD_BYTES
from shared.lakehouse.bronze import BronzeWriter
from shared.landing.service import FileLanding, LandingReport
from tests.landingdata import (
    csv_bytes,
    json_bytes,
    landing,
    ndjson_bytes,
    payment_record,
    table_rows,
)

pytestmark = pytest.mark.unit

_versions = itertools.count(1)


def land(
    lake: Path, data: bytes, name: str, version: int | None = None, **options: Any
) -> LandingReport:
    """Land `data` as `version` (by default a new one) of `landing/payment.transaction/<name>`."""
    service = FileLanding(
        ContractRegistry(),
        Pseudonymizer(b"k" * 32),
        BronzeWriter(str(lake), direct_log=True),
        **options,
    )
    path = f"landing/payment.transaction/{name}"
    etag = f'"{version or next(_versions)}"'
    return service.land(landing(data, path=path, etag=etag))


def dead_of(lake: Path, name: str) -> list[dict[str, Any]]:
    path = f"landing/payment.transaction/{name}"
    return sorted(
        (r for r in table_rows(lake, "deadletter") if r["source"] == path),
        key=lambda r: r["sequence_number"],
    )


@pytest.mark.parametrize(
    ("name", "reason", "message"),
    [
        ("empty.csv", "unsupported_file", "no header row"),
        ("empty.json", "malformed_json", "ends inside the JSON value"),
        ("empty.parquet", "unsupported_file", "not a Parquet file"),
    ],
)
def test_an_empty_file_is_dead_lettered_as_not_its_format(
    tmp_path: Path, name: str, reason: str, message: str
) -> None:
    report = land(tmp_path, b"", name)
    [dead] = dead_of(tmp_path, name)
    assert (dead["reason"], dead["sequence_number"]) == (reason, 0 if "json" not in name else 1)
    assert message in dead["error"] and report.landed == {"deadletter": 1}


def test_an_empty_ndjson_file_or_json_array_has_nothing_to_land(tmp_path: Path) -> None:
    for name, data in (("none.ndjson", b""), ("none.json", b"[]"), ("blank.ndjson", b"\n \n")):
        report = land(tmp_path, data, name)
        assert report.landed == {} and report.records == 0


@pytest.mark.parametrize("suffix", [".csv", ".json", ".ndjson", ".parquet"])
def test_binary_garbage_is_one_dead_letter_not_thousands(tmp_path: Path, suffix: str) -> None:
    garbage = random.Random(7).randbytes(400_000)
    report = land(tmp_path, garbage, f"garbage{suffix}")
    dead = dead_of(tmp_path, f"garbage{suffix}")
    assert len(dead) == 1 and report.landed == {"deadletter": 1}
    assert table_rows(tmp_path, "payment_transaction") == []


def test_a_file_that_stays_unreadable_is_given_up_with_the_first_reason(tmp_path: Path) -> None:
    data = b"".join(b"{not json %d\n" % n for n in range(50))
    land(tmp_path, data, "bad.ndjson", give_up_after=20)
    [dead] = dead_of(tmp_path, "bad.ndjson")
    assert dead["reason"] == "unsupported_file" and dead["sequence_number"] == 50
    assert "none of the first 50 records could be read (first: invalid JSON" in dead["error"]


def test_a_utf16_csv_is_refused_with_a_hint(tmp_path: Path) -> None:
    data = csv_bytes(payment_record(n) for n in range(5)).decode().encode("utf-16")
    land(tmp_path, data, "utf16.csv")
    assert table_rows(tmp_path, "payment_transaction") == []
    assert any("a landing CSV is UTF-8" in r["error"] for r in dead_of(tmp_path, "utf16.csv"))


def test_a_latin1_line_is_rejected_and_the_rest_lands(tmp_path: Path) -> None:
    records = [payment_record(1), payment_record(2, merchant_id="café"), payment_record(3)]
    land(tmp_path, csv_bytes(records).decode().encode("latin-1"), "latin1.csv")
    assert sorted(r["sequence_number"] for r in table_rows(tmp_path, "payment_transaction")) == [
        2,
        4,
    ]
    [dead] = dead_of(tmp_path, "latin1.csv")
    assert (dead["sequence_number"], dead["reason"]) == (3, "not_utf8")
    assert "caf\ufffd" in dead["payload"]


def test_a_huge_line_is_rejected_and_the_rest_lands(tmp_path: Path) -> None:
    lines = csv_bytes([payment_record(1), payment_record(2)]).splitlines(keepends=True)
    data = b"".join([lines[0], lines[1], b"x" * (MAX_RECORD_BYTES + 10) + b"\n", lines[2]])
    land(tmp_path, data, "huge.csv")
    assert len(table_rows(tmp_path, "payment_transaction")) == 2
    [dead] = dead_of(tmp_path, "huge.csv")
    assert (dead["sequence_number"], dead["reason"]) == (3, "unreadable_record")
    assert dead["error"] == "line longer than 1 MiB"


def test_csv_rows_with_missing_or_extra_cells_are_rejected(tmp_path: Path) -> None:
    lines = csv_bytes([payment_record(n) for n in range(3)]).splitlines(keepends=True)
    data = b"".join([lines[0], lines[1], lines[2].rstrip() + b",extra\n", b"tx-9,acct-1\n"])
    land(tmp_path, data, "cells.csv")
    assert len(table_rows(tmp_path, "payment_transaction")) == 1
    dead = dead_of(tmp_path, "cells.csv")
    assert [(d["sequence_number"], d["error"]) for d in dead] == [
        (3, "has 10 fields, the header has 9"),
        (4, "has 2 fields, the header has 9"),
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'"a string"', "malformed_json"),
        (b"42", "malformed_json"),
        (b'[{"a": 1}', "malformed_json"),
        (b"[1, 2]", "not_an_event"),
    ],
)
def test_json_that_is_not_an_array_of_objects_is_dead_lettered(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    land(tmp_path, data, "shape.json")
    assert {d["reason"] for d in dead_of(tmp_path, "shape.json")} == {reason}


def test_one_json_object_is_one_record(tmp_path: Path) -> None:
    report = land(tmp_path, json_bytes([payment_record(1)])[2:-3], "one.json")
    assert report.landed == {"payment_transaction": 1}


def test_parquet_columns_of_the_wrong_type_are_rejected(tmp_path: Path) -> None:
    table = pa.table(
        {
            **{k: [v] * 2 for k, v in payment_record(1).items()},
            "merchant_category": pa.array([5411, 5411], pa.int64()),
            "ts": pa.array([dt.datetime(2024, 1, 1)] * 2, pa.timestamp("us")),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    land(tmp_path / "lake", path.read_bytes(), "typed.parquet")
    dead = dead_of(tmp_path / "lake", "typed.parquet")
    assert [d["sequence_number"] for d in dead] == [1, 2]
    assert all("Expected `str`, got `int` - at `$.merchant_category`" in d["error"] for d in dead)


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with a few bytes replaced, inserted or cut, and sometimes truncated."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        buffer = bytearray(data)
        for _ in range(draw(st.integers(0, 6))):
            at = draw(st.integers(0, max(len(buffer) - 1, 0)))
            action = draw(st.sampled_from(["replace", "insert", "delete"]))
            byte = draw(st.sampled_from(b',"\n\r\\{}[]\x00\xff:0a '))
            if action == "replace" and buffer:
                buffer[at] = byte
            elif action == "insert":
                buffer.insert(at, byte)
            elif buffer:
                del buffer[at]
        if draw(st.booleans()):
            buffer = buffer[: draw(st.integers(0, len(buffer)))]
        return bytes(buffer)

    return mutate()


RECORDS = [payment_record(n, note="x,y") for n in range(6)]
SAMPLES = {
    ".csv": csv_bytes(RECORDS, [*RECORDS[0]]),
    ".json": json_bytes(RECORDS),
    ".ndjson": ndjson_bytes(RECORDS),
}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.sampled_from(list(SAMPLES)).flatmap(lambda s: st.tuples(st.just(s), _mutations(SAMPLES[s])))
)
def test_damaged_files_land_what_is_valid_and_dead_letter_the_rest(
    tmp_path: Path, damaged: tuple[str, bytes]
) -> None:
    suffix, data = damaged
    version = next(_versions)
    name = f"damaged-{version}{suffix}"
    report = land(tmp_path, data, name, version)
    path = f"landing/payment.transaction/{name}"
    rows = [r for r in table_rows(tmp_path, "payment_transaction") if r["source"] == path]
    dead = dead_of(tmp_path, name)
    assert report.landed.get("payment_transaction", 0) == len(rows) <= len(RECORDS)
    assert len(rows) + len(dead) <= report.records + 1  # + 1: the file as a whole
    assert len({r["event_id"] for r in rows}) == len(rows)
    assert all(d["reason"] and d["error"] and d["source"] == path for d in dead)
    again = land(tmp_path, data, name, version)
    assert again.landed == {} and again.rejected == 0


def test_a_json_record_that_is_not_utf8_is_a_reject_not_a_crash() -> None:
    for name, data in (
        ("x.ndjson", b'{"a": "\xff"}\n{"a": 1}\n'),
        ("x.json", b'[{"a": "\xff"}, {"a": 1}]'),
    ):
        [chunk] = read_records(io.BytesIO(data), name)
        assert [r.line for r in chunk.records] == [2 if name.endswith("ndjson") else 1]
        assert chunk.rejects[0].reason == "not UTF-8: invalid start byte"


@pytest.mark.parametrize("suffix", [".csv", ".json", ".ndjson"])
def test_chunks_hold_at_most_about_16_mib_of_the_file(suffix: str) -> None:
    big = "x" * 100_000  # under the csv module's field size limit
    records = [payment_record(n, note=big) for n in range(200)]
    data = {".csv": csv_bytes(records, [*records[0]]), ".json": json_bytes(records)}.get(
        suffix, ndjson_bytes(records)
    )
    chunks = list(read_records(io.BytesIO(data), f"x{suffix}", chunk_records=5000))
    assert sum(len(c.records) for c in chunks) == 200
    assert max(len(c.records) for c in chunks) <= MAX_CHUNK_BYTES // 100_000 + 1


def test_a_card_number_in_the_file_name_is_pseudonymized_in_rows_and_dead_letters(
    tmp_path: Path,
) -> None:
    pan = "4920777766665550"
    records = [payment_record(n) for n in range(3)]
    records[1]["currency"] = "ZZZ"  # one dead letter, beside the rows that land
    report = land(tmp_path, csv_bytes(records), f"4920 7777 6666 5550-{pan}.csv")
    assert report.landed == {"payment_transaction": 2, "deadletter": 1}
    token = "pseudonym:" + Pseudonymizer(b"k" * 32).pseudonym(pan)
    sources = {r["source"] for r in table_rows(tmp_path, "payment_transaction")}
    sources |= {r["source"] for r in table_rows(tmp_path, "deadletter")}
    assert sources == {f"landing/payment.transaction/{token}-{token}.csv"}
