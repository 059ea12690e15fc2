"""Blob triggers end to end: files dropped into the devhost's blob store run functions."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import StartDevhost
from tests.devhost_process import DevhostProcess

pytestmark = pytest.mark.integration

Record = dict[str, Any]


class BlobApp:
    """The `blobs` fixture app on one data dir, with its records and its blob folders."""

    def __init__(self, tmp_path: Path, start_devhost: StartDevhost) -> None:
        self._start = start_devhost
        self.data_dir = tmp_path / "data"
        self.results = tmp_path / "results.jsonl"
        self.hold = tmp_path / "hold"
        self.results.touch()

    def start(self) -> DevhostProcess:
        env = {
            "BLOB_RESULTS_PATH": str(self.results),
            "BLOB_HOLD_PATH": str(self.hold),
            "DEVHOST_BLOB_POLL_INTERVAL_S": "0.05",
        }
        return self._start("blobs", env=env, data_dir=self.data_dir)

    def blob(self, blob: str) -> Path:
        return self.data_dir / "blobs" / blob

    def drop(self, blob: str, data: bytes) -> Path:
        """Write a blob in place, as `cp` does."""
        path = self.blob(blob)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def records(self, function: str | None = None) -> list[Record]:
        lines = self.results.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if function is None or r["function"] == function]

    def wait_for(
        self, condition: Callable[[list[Record]], bool], timeout: float = 20.0
    ) -> list[Record]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.records()
            if condition(records):
                return records
            time.sleep(0.05)
        raise TimeoutError(f"condition not met within {timeout} s; records: {self.records()}")

    def wait_for_blob(self, blob: str, timeout: float = 20.0) -> Path:
        """The output binding writes after the function returns, so poll for the file."""
        path = self.blob(blob)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{blob} was not written within {timeout} s")
            time.sleep(0.05)
        return path

    def poison_rows(self) -> list[tuple[Any, ...]]:
        path = self.data_dir / "devhost" / "blob_receipts.sqlite3"
        with closing(sqlite3.connect(path)) as db:
            return db.execute(
                "SELECT function, blob, attempts, error FROM poison ORDER BY blob"
            ).fetchall()


def named(records: list[Record], function: str, name: str) -> list[Record]:
    return [r for r in records if r["function"] == function and r["name"] == name]


@pytest.fixture
def app(tmp_path: Path, start_devhost: StartDevhost) -> BlobApp:
    return BlobApp(tmp_path, start_devhost)


def test_a_dropped_blob_triggers_once_with_a_stream(app: BlobApp) -> None:
    host = app.start()
    content = b"id,city\n1,Z\xc3\xbcrich\n2,Berlin\n"
    app.drop("landing/day1.csv", content)
    app.drop("landing/notes.txt", b"not a csv")
    app.drop("landing/.day2.csv", b"hidden")
    app.drop("landing/day3.csv.tmp", b"id\n3\n")
    app.drop("landing/day4.csv.partial", b"id\n4\n")
    app.drop("elsewhere/day5.csv", b"id\n5\n")
    [record] = app.wait_for(lambda rs: len(rs) == 1)
    assert record == {
        "function": "ingest_csv",
        "name": "landing/day1.csv",
        "length": len(content),
        "read": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "largest_chunk": len(content),
        "uri": app.blob("landing/day1.csv").resolve().as_uri(),
        "etag": record["etag"],
        "content_type": "text/csv",
        "metadata": {},
        "retry": 0,
    }
    summary = json.loads(app.wait_for_blob("processed/day1.json").read_text(encoding="utf-8"))
    assert summary == {"source": "landing/day1.csv", "sha256": hashlib.sha256(content).hexdigest()}
    # Write, then rename: the finished file triggers under its final name.
    app.blob("landing/day3.csv.tmp").rename(app.blob("landing/day3.csv"))
    records = app.wait_for(lambda rs: len(rs) == 2)
    assert [r["name"] for r in records] == ["landing/day1.csv", "landing/day3.csv"]
    time.sleep(0.3)  # several more polls
    assert len(app.records()) == 2
    assert "ingest_csv: blob landing/{name}.csv in " in host.output()


def test_a_restart_does_not_retrigger_but_overwriting_does(app: BlobApp) -> None:
    host = app.start()
    app.drop("landing/a.csv", b"id\n1\n")
    first = app.wait_for(lambda rs: len(rs) == 1)[0]
    assert host.stop() == 0
    app.start()
    app.drop("landing/b.csv", b"id\n2\n")  # proves the restarted host is polling
    app.wait_for(lambda rs: len(named(rs, "ingest_csv", "landing/b.csv")) == 1)
    time.sleep(0.3)
    assert len(named(app.records(), "ingest_csv", "landing/a.csv")) == 1
    app.drop("landing/a.csv", b"id\n1\n")  # same content, new version
    records = app.wait_for(lambda rs: len(named(rs, "ingest_csv", "landing/a.csv")) == 2)
    second = named(records, "ingest_csv", "landing/a.csv")[1]
    assert second["sha256"] == first["sha256"] and second["etag"] != first["etag"]


def test_a_failing_blob_is_poisoned_after_five_attempts_while_others_flow(
    app: BlobApp,
) -> None:
    host = app.start()
    app.drop("flaky/bad-1.txt", b"bad")
    app.drop("flaky/good-1.txt", b"good")
    host.wait_for_output("poison blob: flaky/bad-1.txt")
    app.drop("flaky/good-2.txt", b"good")  # still flowing after the poison
    records = app.wait_for(lambda rs: len(named(rs, "flaky", "flaky/good-2.txt")) == 1)
    time.sleep(0.3)
    records = app.records("flaky")
    assert [r["retry"] for r in named(records, "flaky", "flaky/bad-1.txt")] == [0, 1, 2, 3, 4]
    assert len(named(records, "flaky", "flaky/good-1.txt")) == 1
    assert app.poison_rows() == [
        ("flaky", "flaky/bad-1.txt", 5, "ValueError: cannot process flaky/bad-1.txt")
    ]
    assert "for function flaky after 5 attempt(s)" in host.output()


def test_a_crash_mid_attempt_retries_the_blob_after_restart(app: BlobApp) -> None:
    app.hold.touch()
    host = app.start()
    app.drop("held/h1.txt", b"hold on")
    app.wait_for(lambda rs: any(r.get("phase") == "start" for r in rs))
    host.kill()  # SIGKILL during the attempt
    app.hold.unlink()
    app.start()
    records = app.wait_for(lambda rs: any(r.get("phase") == "done" for r in rs))
    assert [(r["phase"], r["retry"]) for r in records] == [
        ("start", 0),
        ("start", 1),
        ("done", 1),
    ]


def test_bytes_and_str_parameters_get_the_whole_content(app: BlobApp) -> None:
    host = app.start()
    data = bytes(range(256)) * 4
    app.drop("raw/r.bin", data)
    app.drop("text/t.txt", "héllo wörld".encode())
    app.drop("text/binary.txt", b"\xff\xfe\x00")
    app.drop("tables/t.csv", b'a,b\n1,"multi\nline"\n2,3\n')
    records = app.wait_for(lambda rs: len(rs) == 3)
    by_function = {r["function"]: r for r in records}
    assert by_function["as_bytes"] == {
        "function": "as_bytes",
        "type": "bytes",
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert by_function["as_text"] == {"function": "as_text", "type": "str", "text": "héllo wörld"}
    assert by_function["count_rows"] == {
        "function": "count_rows",
        "name": "tables/t.csv",
        "rows": 3,
        "header": ["a", "b"],
    }
    host.wait_for_output("poison blob: text/binary.txt")
    [row] = app.poison_rows()
    assert row[:3] == ("as_text", "text/binary.txt", 1) and "not UTF-8" in row[3]


def test_an_http_function_writes_a_blob_output(app: BlobApp) -> None:
    host = app.start()
    response = requests.post(host.url("/api/report"), data=b"report \x00 body", timeout=5)
    assert response.status_code == 201
    assert app.blob("reports/latest.txt").read_bytes() == b"report \x00 body"
    assert [p.name for p in app.blob("reports").iterdir()] == ["latest.txt"]
