"""The hub store (group commit, queries), the status payloads and the client binding's URLs."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.durable.links import Links
from devhost.durable.status import history_payload, status_payload
from devhost.durable.store import (
    InstanceQuery,
    InstanceRecord,
    Store,
    get_instance,
    list_instances,
    purge_statements,
)

pytestmark = pytest.mark.unit


def record(instance_id: str, created: str, status: str = "Completed") -> InstanceRecord:
    return InstanceRecord(
        instance_id, "orch", "e1", status, '{"a": 1}', "42", None, created, created
    )


@pytest.fixture
def store(tmp_path: Path):
    hub = Store(tmp_path / "durable" / "Hub.sqlite", synchronous="NORMAL")
    yield hub
    hub.close()


async def test_concurrent_writes_are_group_committed(store: Store) -> None:
    writes = [
        store.write([record(f"i{n}", f"2024-01-01T00:00:{n:02d}.000000Z").upsert()])
        for n in range(50)
    ]
    await asyncio.gather(*writes)
    assert store.commits < 50
    found = store.read(lambda c: list_instances(c, InstanceQuery(), None, None))
    assert [r.instance_id for r in found] == [f"i{n}" for n in range(50)]


async def test_a_failing_write_does_not_fail_its_neighbours(store: Store) -> None:
    good = store.write([record("ok", "2024-01-01T00:00:00.000000Z").upsert()])
    bad = store.write([("INSERT INTO nowhere VALUES (1)", ())])
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert results[0] is None and isinstance(results[1], sqlite3.OperationalError)
    assert store.read(lambda c: get_instance(c, "ok")) is not None


async def test_queries_filter_and_page(store: Store) -> None:
    rows = [
        record("a1", "2024-01-01T00:00:01.000000Z"),
        record("a2", "2024-01-01T00:00:02.000000Z", "Running"),
        record("b1", "2024-01-01T00:00:03.000000Z", "Failed"),
    ]
    await store.write([r.upsert() for r in rows])

    def ids(query: InstanceQuery, limit: int | None = None, after: str | None = None) -> list[str]:
        return [r.instance_id for r in store.read(lambda c: list_instances(c, query, limit, after))]

    assert ids(InstanceQuery(prefix="a")) == ["a1", "a2"]
    assert ids(InstanceQuery(statuses=("Failed", "Running"))) == ["a2", "b1"]
    assert ids(InstanceQuery(created_from="2024-01-01T00:00:02.000000Z")) == ["a2", "b1"]
    assert ids(InstanceQuery(created_to="2024-01-01T00:00:01.500000Z")) == ["a1"]
    assert ids(InstanceQuery(), 2) == ["a1", "a2"]
    assert ids(InstanceQuery(), 2, "2024-01-01T00:00:02.000000Z|a2") == ["b1"]
    await store.write(purge_statements("a1"))
    assert ids(InstanceQuery()) == ["a2", "b1"]


def test_status_payload_has_the_documented_fields() -> None:
    payload = status_payload(record("x", "2024-01-01T00:00:00.000000Z"))
    assert payload == {
        "name": "orch",
        "instanceId": "x",
        "runtimeStatus": "Completed",
        "input": {"a": 1},
        "customStatus": None,
        "output": 42,
        "createdTime": "2024-01-01T00:00:00.000000Z",
        "lastUpdatedTime": "2024-01-01T00:00:00.000000Z",
    }
    assert status_payload(record("x", "t"), show_input=False)["input"] is None


def test_history_folds_scheduling_into_completions() -> None:
    t = "2024-01-01T00:00:00.000000Z"
    history = [
        {"EventType": 12, "EventId": -1, "Timestamp": t},
        {"EventType": 0, "EventId": -1, "Timestamp": t, "Name": "orch", "Input": "[1]"},
        {"EventType": 4, "EventId": 0, "Timestamp": "s", "Name": "act", "Input": "1"},
        {"EventType": 13, "EventId": -1, "Timestamp": t},
        {"EventType": 5, "EventId": -1, "Timestamp": t, "TaskScheduledId": 0, "Result": '"r"'},
    ]
    shown = history_payload(history, show_output=True)
    assert [e["EventType"] for e in shown] == ["ExecutionStarted", "TaskCompleted"]
    assert shown[0]["Input"] == [1]
    assert shown[1] == {
        "EventType": "TaskCompleted",
        "Timestamp": t,
        "FunctionName": "act",
        "ScheduledTime": "s",
        "Result": "r",
    }
    assert "Result" not in history_payload(history, show_output=False)[1]


def test_the_client_binding_gives_the_sdk_working_urls() -> None:
    links = Links("http://127.0.0.1:7071", "MyHub", code="k")
    client = df.DurableOrchestrationClient(links.client_binding())
    assert client._get_start_new_url("id1", "orch") == (
        "http://127.0.0.1:7071/durabletask/orchestrators/orch/id1"
    )
    request = func.HttpRequest("POST", "http://localhost:9999/api/start", body=b"")
    response = client.create_check_status_response(request, "id1")
    body = json.loads(response.get_body())
    assert response.status_code == 202
    assert body["id"] == "id1"
    assert body["statusQueryGetUri"] == (
        "http://localhost:9999/runtime/webhooks/durabletask/instances/id1"
        "?taskHub=MyHub&connection=Storage&code=k"
    )
    assert response.headers["Location"] == body["statusQueryGetUri"]
    assert "/instances/id1/raiseEvent/{eventName}?" in body["sendEventPostUri"]
    assert client._orchestration_bindings.task_hub_name == "MyHub"
