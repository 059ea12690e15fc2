"""POST /api/events over real HTTP: the CloudEvents SDK in binary and structured mode, gzip
bodies and bombs, the per-request event limit, and a host that stays responsive meanwhile."""

from __future__ import annotations

import datetime as dt
import gzip
import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from tests.conftest import StartDevhost
from tests.eventdata import interaction, payment
from tests.integration.ingest_helpers import Platform, eventually, landed_ids, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture
def app(start_devhost: StartDevhost, tmp_path: Path) -> Platform:
    return start_platform(start_devhost, tmp_path / "data")


def sdk_event(event: dict[str, Any]) -> CloudEvent:
    attributes = {k: v for k, v in event.items() if k not in ("data", "specversion", "time")}
    attributes["time"] = dt.datetime.fromisoformat(event["time"])
    attributes["datacontenttype"] = "application/json"
    return CloudEvent(attributes=attributes, data=event["data"])


def test_the_cloudevents_sdk_posts_in_both_modes(app: Platform) -> None:
    events = [payment(1), interaction(2)]
    binary = to_binary_event(sdk_event(events[0]))
    structured = to_structured_event(sdk_event(events[1]))
    for message in (binary, structured):
        response = app.post_body(message.body, message.headers)
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "rejected": []}
    lake = str(app.data_dir / "lake")
    expected = sorted(e["id"] for e in events)
    eventually(lambda: sorted(landed_ids(lake)) == expected, what="both events in bronze")


def test_an_invalid_event_gets_the_same_answer_in_both_modes(app: Platform) -> None:
    event = sdk_event(payment(3, currency="ZZZ"))
    answers = [
        app.post_body(m.body, m.headers)
        for m in (to_binary_event(event), to_structured_event(event))
    ]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()
    assert "currency" in answers[0].json()["error"]


def test_a_ce_header_sent_twice_is_a_400(app: Platform) -> None:
    message = to_binary_event(sdk_event(payment(6)))
    connection = http.client.HTTPConnection("127.0.0.1", app.host.port, timeout=30)
    connection.putrequest("POST", "/api/events")
    for name, value in [*message.headers.items(), ("ce-id", "other"), ("x-functions-key", app.key)]:
        connection.putheader(name, value)
    connection.putheader("content-length", str(len(message.body)))
    connection.endheaders(message.body)
    response = connection.getresponse()
    assert response.status == 400
    assert "more than once" in json.loads(response.read())["error"]
    connection.close()


def test_a_megabyte_of_empty_objects_is_a_413(app: Platform) -> None:
    body = b"[" + b",".join([b"{}"] * 349_524) + b"]"
    response = app.post_body(body, {"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 413
    assert "5000" in response.json()["error"]


def test_gzip_bodies_are_inflated_and_bombs_refused(app: Platform) -> None:
    headers = {"content-type": "application/cloudevents-batch+json", "content-encoding": "gzip"}
    batch = gzip.compress(json.dumps([payment(4), payment(5)]).encode())
    assert app.post_body(batch, headers).json()["accepted"] == 2
    bomb = gzip.compress(b"[" + b" " * 100_000_000 + b"]")
    refused = app.post_body(bomb, headers)
    assert refused.status_code == 413
    assert "inflated" in refused.json()["error"]


def test_health_answers_while_large_batches_are_checked(app: Platform) -> None:
    batch = json.dumps([payment(n, currency="ZZZ") for n in range(2_900)]).encode()
    assert len(batch) < 1024 * 1024
    finished: list[str] = []
    lock = threading.Lock()
    posts_done = threading.Event()

    def post() -> int:
        status = app.post_body(batch, {"content-type": "application/cloudevents-batch+json"})
        with lock:
            finished.append("post")
        return status.status_code

    def probe() -> None:
        while not posts_done.is_set():
            requests.get(app.host.url("/api/health"), timeout=60)
            with lock:
                finished.append("health")

    with ThreadPoolExecutor(9) as pool:
        posts = [pool.submit(post) for _ in range(8)]
        prober = pool.submit(probe)
        statuses = [p.result() for p in posts]
        posts_done.set()
        prober.result()
    assert statuses == [202] * 8
    last_post = len(finished) - finished[::-1].index("post") - 1
    assert "health" in finished[:last_post], finished
