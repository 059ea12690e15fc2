"""The devhost's Cosmos DB trigger and bindings end to end: documents written over HTTP and
straight into the store reach the change feed trigger across a restart, a failing batch is
retried, and the input binding reads by id and by query."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from embedded.documents.store import DocumentStore, database_path
from tests.conftest import StartDevhost
from tests.devhost_process import DevhostProcess

pytestmark = pytest.mark.integration

APP = "cosmosdb"
DATABASE = "appdb"  # the fixture's COSMOS_DATABASE
LEASE = "localhost_appdb_items..0"  # its connection names the account localhost
BATCH_LIMIT = 5  # its maxItemsPerInvocation

Records = list[dict[str, Any]]


def _records(path: Path) -> Records:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _wait_for(path: Path, condition: Callable[[Records], bool], timeout: float = 20.0) -> Records:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _records(path)
        if condition(records):
            return records
        time.sleep(0.05)
    raise TimeoutError(f"condition not met within {timeout} s; records: {_records(path)[-3:]}")


def _as_written(document: dict[str, Any]) -> dict[str, Any]:
    """The document without the system properties the store adds (`_etag`, `_ts`, `_lsn`)."""
    return {key: value for key, value in document.items() if not key.startswith("_")}


def _seen(records: Records) -> list[dict[str, Any]]:
    """Every document the trigger received in a batch it finished."""
    return [
        _as_written(document)
        for record in records
        if record["outcome"] == "done"
        for document in record["documents"]
    ]


def _all_seen(written: list[dict[str, Any]]) -> Callable[[Records], bool]:
    return lambda records: all(document in _seen(records) for document in written)


def _post(host: DevhostProcess, documents: list[dict[str, Any]]) -> None:
    response = requests.post(host.url("/api/documents"), json=documents, timeout=10)
    assert response.status_code == 201, response.text


def _documents(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}-{n}",
            "category": f"c{n % 3}",
            "n": n,
            "ratio": n / 4,
            "tags": [prefix, str(n)],
            "nested": {"even": n % 2 == 0, "none": None},
        }
        for n in range(count)
    ]


def test_every_change_reaches_the_trigger_as_written_across_a_restart(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    record_file, data_dir = tmp_path / "received.jsonl", tmp_path / "data"
    env = {"COSMOS_RECORD_FILE": str(record_file)}
    host = start_devhost(APP, env=env, data_dir=data_dir)
    written = _documents("http", 12)
    _post(host, written[:7])
    _post(host, written[7:])
    _wait_for(record_file, _all_seen(written))
    assert host.stop() == 0

    # While the devhost is down another writer goes on: new documents and a changed one.
    store = DocumentStore(database_path(data_dir, DATABASE))
    items = store.existing("items")
    assert items is not None and items.spec.partition_key_path == "/category"
    offline = [*_documents("offline", 6), {**written[0], "n": 100, "changed": "offline"}]
    for document in offline:
        items.upsert(document)
    written += offline

    host = start_devhost(APP, env=env, data_dir=data_dir)
    _wait_for(record_file, _all_seen(written))
    later = [*_documents("later", 5), {**offline[0], "changed": "later"}]
    _post(host, later)
    written += later
    records = _wait_for(record_file, _all_seen(written))
    assert host.stop() == 0

    seen = _seen(records)
    assert all(document in written for document in seen)  # nothing but what was written
    assert all(record["type"] == "DocumentList" for record in records)
    assert all(1 <= len(record["documents"]) <= BATCH_LIMIT for record in records)
    assert any(len(record["documents"]) == BATCH_LIMIT for record in records)
    # The trigger's own output binding copied the latest version of every document.
    copies = store.existing("copies")
    assert copies is not None and copies.spec.partition_key_path == "/category"
    latest = {document["id"]: document for document in written}
    copied = [_as_written(change.document) for change in copies.changes(None, 1000).changes]
    assert sorted(copied, key=lambda d: d["id"]) == sorted(latest.values(), key=lambda d: d["id"])
    # The lease is a document: released on stop, at the end of the feed.
    leases = store.existing("leases")
    assert leases is not None
    lease = leases.read(LEASE, LEASE)
    assert lease["Owner"] is None and lease["LeaseToken"] == "0"
    assert items.changes(lease["ContinuationToken"]).changes == []
    store.close()


def test_a_batch_that_fails_once_is_delivered_again_under_the_retry_policy(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    record_file = tmp_path / "received.jsonl"
    host = start_devhost(APP, env={"COSMOS_RECORD_FILE": str(record_file)})
    flaky = {"id": "flaky", "category": "c0", "fail_once": True}
    _post(host, [flaky])
    records = _wait_for(record_file, _all_seen([flaky]))
    attempts = [r for r in records if any(d["id"] == "flaky" for d in r["documents"])]
    assert [(a["outcome"], a["retry_count"]) for a in attempts] == [("failed", 0), ("done", 1)]
    assert attempts[0]["documents"] == attempts[1]["documents"]  # the same batch, as it was
    after = {"id": "after", "category": "c1"}
    _post(host, [after])
    records = _wait_for(record_file, _all_seen([after]))
    assert sum(d["id"] == "flaky" for d in _seen(records)) == 1  # the lease moved past it


def test_the_input_binding_reads_by_id_and_by_query(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    host = start_devhost(APP, env={"COSMOS_RECORD_FILE": str(tmp_path / "received.jsonl")})
    _post(
        host,
        [
            {"id": "a", "category": "x", "n": 1, "color": "red"},
            {"id": "b", "category": "x", "n": 2, "color": "red"},
            {"id": "c", "category": "x", "n": 3, "color": "blue"},
            {"id": "a", "category": "y", "n": 4, "color": "red"},
        ],
    )
    found = requests.get(host.url("/api/documents/y/a"), timeout=10)
    assert found.status_code == 200
    body = found.json()
    assert body["count"] == 1  # a point read too is a DocumentList, of one
    assert _as_written(body["document"]) == {"id": "a", "category": "y", "n": 4, "color": "red"}
    assert requests.get(host.url("/api/documents/z/a"), timeout=10).status_code == 404
    red = requests.get(host.url("/api/categories/x"), params={"color": "red"}, timeout=10)
    assert red.status_code == 200
    assert [(d["id"], d["n"]) for d in red.json()] == [("b", 2), ("a", 1)]
    # A value that would break out of a string in spliced SQL is only ever a parameter.
    odd = requests.get(host.url("/api/categories/x"), params={"color": "' OR 1=1"}, timeout=10)
    assert odd.status_code == 200 and odd.json() == []
    missing = requests.get(host.url("/api/categories/x"), timeout=10)
    assert missing.status_code == 500
    assert "no value for {Query.color}" in host.output()


def test_a_missing_lease_container_stops_the_devhost_naming_it(
    start_devhost: StartDevhost,
) -> None:
    host = start_devhost(APP, env={"COSMOS_CREATE_LEASES": "false"}, wait=False)
    try:
        code = host.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the devhost started without its lease container:\n{host.output()}")
    assert code == 2
    assert (
        "the lease container 'leases' (in database 'appdb') does not exist. To automatically "
        "create the lease container, set 'createLeaseContainerIfNotExists' to 'true'"
    ) in host.output()
