"""Talk to a devhost's Durable Functions: the webhook API and the fixture apps' starters."""

from __future__ import annotations

import time
from typing import Any

import requests

from tests.devhost_process import DevhostProcess

WEBHOOKS = "/runtime/webhooks/durabletask"
FINISHED = ("Completed", "Failed", "Terminated")


def status(host: DevhostProcess, instance_id: str, **params: Any) -> dict[str, Any]:
    response = requests.get(
        host.url(f"{WEBHOOKS}/instances/{instance_id}"), params=params, timeout=10
    )
    assert response.status_code in (200, 202, 400, 500), response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for(
    host: DevhostProcess,
    instance_id: str,
    statuses: tuple[str, ...] = FINISHED,
    timeout: float = 20,
) -> dict[str, Any]:
    """Poll the status API until the instance reaches one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        body = status(host, instance_id, showHistory="true", showHistoryOutput="true")
        if body["runtimeStatus"] in statuses:
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"{instance_id} is still {body['runtimeStatus']}: {body}")
        time.sleep(0.05)


def start(
    host: DevhostProcess, name: str, payload: Any = None, instance_id: str | None = None
) -> str:
    """Start through the app's HTTP starter (DurableOrchestrationClient.start_new)."""
    params = {"id": instance_id} if instance_id else {}
    response = requests.post(
        host.url(f"/api/start/{name}"), json=payload, params=params, timeout=10
    )
    assert response.status_code == 202, response.text
    instance: str = response.json()["id"]
    return instance


def run(host: DevhostProcess, name: str, payload: Any = None) -> requests.Response:
    """Start and wait (wait_for_completion_or_create_check_status_response)."""
    return requests.post(host.url(f"/api/run/{name}"), json=payload, timeout=30)


def client(host: DevhostProcess, op: str, **args: Any) -> Any:
    response = requests.post(host.url(f"/api/client/{op}"), json=args, timeout=20)
    assert response.status_code == 200, response.text
    return response.json()


def events_of(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in body.get("historyEvents", []) if e["EventType"] == kind]
