"""The Durable HTTP API from curl-style requests, and every DurableOrchestrationClient method."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.devhost_process import FIXTURE_APPS, DevhostProcess
from tests.durable_http import (
    WEBHOOKS,
    client,
    events_of,
    start,
    status,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevhostProcess]:
    data: Path = tmp_path_factory.mktemp("durable-api") / "data"
    process = DevhostProcess(FIXTURE_APPS / "durable_features", data).wait_ready()
    yield process
    process.stop()


def test_start_status_and_location_with_plain_http(host: DevhostProcess) -> None:
    response = requests.post(
        host.url(f"{WEBHOOKS}/orchestrators/fan_out/curl-1"), data="5", timeout=10
    )
    assert response.status_code == 202
    links = response.json()
    assert links["id"] == "curl-1"
    assert response.headers["Location"] == links["statusQueryGetUri"]
    assert "taskHub=FeaturesHub" in links["statusQueryGetUri"]
    body = wait_for(host, "curl-1")
    final = requests.get(response.headers["Location"], timeout=10)
    assert final.status_code == 200
    assert final.json()["output"] == 30 == body["output"]
    assert final.json()["input"] == 5
    assert set(final.json()) >= {
        "name", "instanceId", "runtimeStatus", "input", "customStatus", "output",
        "createdTime", "lastUpdatedTime",
    }  # fmt: skip


def test_status_codes_for_running_missing_and_duplicate(host: DevhostProcess) -> None:
    url = host.url(f"{WEBHOOKS}/orchestrators/approval/dup-1")
    assert requests.post(url, timeout=10).status_code == 202
    wait_for(host, "dup-1", ("Running",))
    running = requests.get(host.url(f"{WEBHOOKS}/instances/dup-1"), timeout=10)
    assert running.status_code == 202 and "Location" in running.headers
    duplicate = requests.post(url, timeout=10)
    assert duplicate.status_code == 409
    assert "dup-1" in duplicate.json()["message"]
    missing = requests.get(host.url(f"{WEBHOOKS}/instances/nope"), timeout=10)
    assert missing.status_code == 404
    unknown = requests.post(host.url(f"{WEBHOOKS}/orchestrators/no_such"), timeout=10)
    assert unknown.status_code == 404
    bad = requests.post(host.url(f"{WEBHOOKS}/orchestrators/fan_out"), data="{nope", timeout=10)
    assert bad.status_code == 400
    odd_id = requests.post(host.url(f"{WEBHOOKS}/orchestrators/fan_out/a%3Fb"), timeout=10)
    assert odd_id.status_code == 400 and "must not contain" in odd_id.json()["message"]
    other_hub = requests.get(
        host.url(f"{WEBHOOKS}/instances/dup-1"), params={"taskHub": "Other"}, timeout=10
    )
    assert other_hub.status_code == 404


def test_check_status_links_work_from_curl(host: DevhostProcess) -> None:
    response = requests.post(host.url("/api/start/approval"), timeout=10)
    assert response.status_code == 202
    links = response.json()
    assert response.headers["Location"] == links["statusQueryGetUri"]
    wait_for(host, links["id"], ("Running",))
    event_url = links["sendEventPostUri"].replace("{eventName}", "approve")
    assert requests.post(event_url, json={"ok": 1}, timeout=10).status_code == 202
    done = wait_for(host, links["id"])
    assert done["output"] == {"ok": 1}
    gone = requests.post(event_url, json={"ok": 2}, timeout=10)
    assert gone.status_code == 410
    assert requests.delete(links["purgeHistoryDeleteUri"], timeout=10).json() == {
        "instancesDeleted": 1
    }
    assert requests.get(links["statusQueryGetUri"], timeout=10).status_code == 404


def test_terminate_with_the_sdk_and_curl(host: DevhostProcess) -> None:
    first = start(host, "approval")
    wait_for(host, first, ("Running",))
    client(host, "terminate", id=first, reason="no longer needed")
    body = wait_for(host, first)
    assert body["runtimeStatus"] == "Terminated"
    assert body["output"] == "no longer needed"
    assert events_of(body, "ExecutionTerminated")[0]["Reason"] == "no longer needed"
    second = start(host, "approval")
    url = host.url(f"{WEBHOOKS}/instances/{second}/terminate?reason=curl")
    assert requests.post(url, timeout=10).status_code == 202
    assert wait_for(host, second)["runtimeStatus"] == "Terminated"
    assert requests.post(url, timeout=10).status_code == 410


def test_suspend_holds_events_until_resume(host: DevhostProcess) -> None:
    instance_id = start(host, "approval")
    wait_for(host, instance_id, ("Running",))
    client(host, "suspend", id=instance_id, reason="maintenance")
    wait_for(host, instance_id, ("Suspended",))
    client(host, "raise_event", id=instance_id, name="approve", data="later")
    time.sleep(0.5)
    assert status(host, instance_id)["runtimeStatus"] == "Suspended"
    client(host, "resume", id=instance_id, reason="done")
    body = wait_for(host, instance_id)
    assert body["output"] == "later"
    kinds = [e["EventType"] for e in body["historyEvents"]]
    assert kinds.index("ExecutionSuspended") < kinds.index("ExecutionResumed")
    suspend = host.url(f"{WEBHOOKS}/instances/{instance_id}/suspend")
    assert requests.post(suspend, timeout=10).status_code == 410


def test_client_status_queries(host: DevhostProcess) -> None:
    instance_id = start(host, "sequence")
    wait_for(host, instance_id)
    one = client(host, "get_status", id=instance_id, history=True)
    assert one["runtimeStatus"] == "Completed" and one["instanceId"] == instance_id
    assert [e["EventType"] for e in one["history"]][0] == "ExecutionStarted"
    assert client(host, "get_status", id="missing") is None
    everything = client(host, "get_status_all")
    assert instance_id in {s["instanceId"] for s in everything}
    completed = client(host, "get_status_by", statuses=["Completed"])
    assert instance_id in {s["instanceId"] for s in completed}
    assert all(s["runtimeStatus"] == "Completed" for s in completed)
    running = client(host, "get_status_by", statuses=["Running"])
    assert instance_id not in {s["instanceId"] for s in running}


def test_list_filters_and_continuation(host: DevhostProcess) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [start(host, "sequence", instance_id=f"page-{i}") for i in range(5)]
    for instance_id in ids:
        wait_for(host, instance_id)
    seen: list[str] = []
    headers: dict[str, str] = {}
    params = {"createdTimeFrom": before.isoformat(), "instanceIdPrefix": "page-", "top": "2"}
    for _ in range(5):
        response = requests.get(
            host.url(f"{WEBHOOKS}/instances"), params=params, headers=headers, timeout=10
        )
        assert response.status_code == 200
        seen += [s["instanceId"] for s in response.json()]
        token = response.headers.get("x-ms-continuation-token")
        if not token:
            break
        headers = {"x-ms-continuation-token": token}
    assert sorted(seen) == sorted(ids)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    empty = requests.get(
        host.url(f"{WEBHOOKS}/instances"), params={"createdTimeFrom": future}, timeout=10
    )
    assert empty.json() == []
    to_past = requests.get(
        host.url(f"{WEBHOOKS}/instances"),
        params={"createdTimeTo": before.isoformat(), "instanceIdPrefix": "page-"},
        timeout=10,
    )
    assert to_past.json() == []
    failed = requests.get(
        host.url(f"{WEBHOOKS}/instances"), params={"runtimeStatus": "Failed,Terminated"}, timeout=10
    )
    assert not {s["instanceId"] for s in failed.json()} & set(ids)


def test_purge_one_and_by_filter(host: DevhostProcess) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    single = start(host, "sequence")
    wait_for(host, single)
    assert client(host, "purge", id=single) == 1
    assert requests.get(host.url(f"{WEBHOOKS}/instances/{single}"), timeout=10).status_code == 404
    assert client(host, "purge", id=single) == 0
    running = start(host, "approval")
    wait_for(host, running, ("Running",))
    done = [start(host, "sequence") for _ in range(3)]
    for instance_id in done:
        wait_for(host, instance_id)
    purged = client(host, "purge_by", **{"from": since.isoformat(), "statuses": ["Completed"]})
    assert purged >= 3
    for instance_id in done:
        assert (
            requests.get(host.url(f"{WEBHOOKS}/instances/{instance_id}"), timeout=10).status_code
            == 404
        )
    assert status(host, running)["runtimeStatus"] == "Running"  # running ones are kept
    response = requests.delete(host.url(f"{WEBHOOKS}/instances/{running}"), timeout=10)
    assert response.status_code == 412  # Precondition Failed, as in Azure
    assert "terminal state" in response.json()["message"]


def test_purge_by_status_deletes_only_what_the_same_filter_lists(host: DevhostProcess) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    running = start(host, "approval")
    done = start(host, "sequence")
    wait_for(host, running, ("Running",))
    wait_for(host, done)
    instances = host.url(f"{WEBHOOKS}/instances")
    for status_filter in ("Running", "Pending,Completed", "Suspended"):
        refused = requests.delete(
            instances, params={"createdTimeFrom": since, "runtimeStatus": status_filter}, timeout=10
        )
        assert refused.status_code == 400, status_filter
        assert "only finished instances can be purged" in refused.json()["message"]
    for method in (requests.get, requests.delete):
        lower = method(
            instances, params={"createdTimeFrom": since, "runtimeStatus": "completed"}, timeout=10
        )
        assert lower.status_code == 400 and "case-sensitive" in lower.json()["message"]
    no_from = requests.delete(instances, params={"runtimeStatus": "Completed"}, timeout=10)
    assert no_from.status_code == 400 and "createdTimeFrom" in no_from.json()["message"]
    listed = requests.get(
        instances, params={"createdTimeFrom": since, "runtimeStatus": "Completed"}, timeout=10
    ).json()
    purged = requests.delete(
        instances, params={"createdTimeFrom": since, "runtimeStatus": "Completed"}, timeout=10
    ).json()
    assert purged["instancesDeleted"] == len(listed) >= 1
    gone = requests.get(host.url(f"{WEBHOOKS}/instances/{done}"), timeout=10)
    assert gone.status_code == 404
    assert status(host, running)["runtimeStatus"] == "Running"


@pytest.mark.parametrize(
    "params",
    [
        {"top": "99999999999999999999999"},
        {"top": "²"},
        {"createdTimeFrom": "0001-01-01T00:00:00+14:00"},
        {"createdTimeTo": "9999-12-31T23:59:59-14:00"},
        {"showInput": "maybe"},
    ],
)
def test_bad_query_values_are_400s_with_a_message(
    host: DevhostProcess, params: dict[str, str]
) -> None:
    response = requests.get(host.url(f"{WEBHOOKS}/instances"), params=params, timeout=10)
    assert response.status_code == 400, response.text
    assert next(iter(params)) in response.json()["message"]


def test_deeply_nested_bodies_are_400s(host: DevhostProcess) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    started = requests.post(host.url(f"{WEBHOOKS}/orchestrators/sequence"), data=deep, timeout=10)
    assert started.status_code == 400 and "nested too deeply" in started.json()["message"]
    waiting = start(host, "approval")
    wait_for(host, waiting, ("Running",))
    raised = requests.post(
        host.url(f"{WEBHOOKS}/instances/{waiting}/raiseEvent/approve"), data=deep, timeout=10
    )
    assert raised.status_code == 400 and "nested too deeply" in raised.json()["message"]
    client(host, "terminate", id=waiting, reason="done")
