"""Durable Functions on the devhost end to end: each orchestration feature via the SDK client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.devhost_process import FIXTURE_APPS, DevhostProcess
from tests.durable_http import WEBHOOKS, client, events_of, run, start, status, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevhostProcess]:
    data: Path = tmp_path_factory.mktemp("durable") / "data"
    process = DevhostProcess(FIXTURE_APPS / "durable_features", data).wait_ready()
    yield process
    process.stop()


def test_activity_chain_returns_each_result(host: DevhostProcess) -> None:
    response = run(host, "sequence")
    assert response.status_code == 200
    assert response.json() == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_task_all_fans_out_and_in(host: DevhostProcess) -> None:
    response = run(host, "fan_out", 50)
    assert response.json() == sum(i * i for i in range(50))


def test_task_any_returns_the_first_to_finish(host: DevhostProcess) -> None:
    # the SDK answers a string output as the raw text
    assert run(host, "first_wins").text == "Hello fast!"


def test_activity_exception_can_be_caught(host: DevhostProcess) -> None:
    text = run(host, "catcher").text
    assert text.startswith("caught: KeyError: 'no such thing: z'")
    assert "function_app.py" in text  # the activity's stack comes along...
    assert "devhost/invocation.py" not in text  # ...without the host's frames


def test_uncaught_exception_fails_the_instance_with_message_and_stack(host: DevhostProcess) -> None:
    instance_id = start(host, "failing")
    body = wait_for(host, instance_id)
    assert body["runtimeStatus"] == "Failed"
    assert body["output"] == "Orchestrator function 'failing' failed: ValueError: kaput"
    completed = events_of(body, "ExecutionCompleted")[0]
    assert completed["OrchestrationStatus"] == "Failed"
    stack = completed["FailureDetails"]["StackTrace"]
    assert "ValueError: kaput" in stack and "function_app.py" in stack
    response = requests.get(host.url(f"{WEBHOOKS}/instances/{instance_id}"), timeout=10)
    assert response.status_code == 400
    response = requests.get(
        host.url(f"{WEBHOOKS}/instances/{instance_id}"),
        params={"returnInternalServerErrorOnFailure": "true"},
        timeout=10,
    )
    assert response.status_code == 500


def test_a_nondeterministic_orchestrator_fails_clearly(host: DevhostProcess) -> None:
    body = wait_for(host, start(host, "nondeterministic"))
    assert body["runtimeStatus"] == "Failed"
    assert "Non-deterministic workflow detected" in body["output"]
    assert "CallActivity 'square'" in body["output"] and "CallActivity 'hello'" in body["output"]


def test_retry_with_backoff_until_success(host: DevhostProcess) -> None:
    body = wait_for(host, start(host, "retry_until_success", "retry-a"))
    assert body["runtimeStatus"] == "Completed"
    assert body["output"]["result"] == "ok after 3"
    # waits of 200 ms, then 400 ms capped by the 300 ms max interval
    assert body["output"]["elapsed"] >= 0.5
    assert len(events_of(body, "TaskFailed")) == 2
    assert len(events_of(body, "TimerFired")) == 2


def test_retry_gives_up_after_max_attempts(host: DevhostProcess) -> None:
    body = wait_for(host, start(host, "retry_exhausted"))
    assert body["output"].startswith("gave up: KeyError")
    assert len(events_of(body, "TaskFailed")) == 3


def test_retry_stops_running_attempts_after_the_retry_timeout(host: DevhostProcess) -> None:
    body = wait_for(host, start(host, "retry_timeout"))
    assert body["output"].startswith("gave up:")
    failures = events_of(body, "TaskFailed")
    assert len(failures) == 10  # the SDK counts every attempt...
    ran = [f for f in failures if "retry timeout" not in f["Reason"]]
    assert 2 <= len(ran) <= 3  # ...but only those inside the 500 ms timeout ran


def test_timer_fires_at_its_time(host: DevhostProcess) -> None:
    started = time.monotonic()
    body = wait_for(host, start(host, "timer", 1))
    assert time.monotonic() - started >= 1
    assert body["output"]["woke"] >= body["output"]["fire_at"]


def test_a_timer_in_the_past_fires_at_once(host: DevhostProcess) -> None:
    started = time.monotonic()
    assert run(host, "past_timer").text == "fired"
    assert time.monotonic() - started < 5


def test_a_cancelled_timer_never_fires(host: DevhostProcess) -> None:
    instance_id = start(host, "cancel_timer")
    wait_for(host, instance_id, ("Running",))
    client(host, "raise_event", id=instance_id, name="go", data={"fast": True})
    body = wait_for(host, instance_id)
    assert body["output"] == {"event": {"fast": True}}
    time.sleep(2.5)  # past the timer's deadline
    body = status(host, instance_id, showHistory="true")
    assert events_of(body, "TimerFired") == []
    assert body["runtimeStatus"] == "Completed"


def test_external_event_and_custom_status(host: DevhostProcess) -> None:
    instance_id = start(host, "approval")
    body = wait_for(host, instance_id, ("Running",))
    deadline = time.monotonic() + 10
    while body["customStatus"] is None and time.monotonic() < deadline:
        body = status(host, instance_id)
    assert body["customStatus"] == {"stage": "waiting"}
    client(host, "raise_event", id=instance_id, name="approve", data={"by": "ops", "ok": True})
    body = wait_for(host, instance_id)
    assert body["output"] == {"by": "ops", "ok": True}
    assert body["customStatus"] == {"stage": "decided"}


def test_sub_orchestrations_with_and_without_ids_and_with_retry(host: DevhostProcess) -> None:
    instance_id = start(host, "parent")
    body = wait_for(host, instance_id)
    assert body["runtimeStatus"] == "Completed", body
    first, second, retried, named_retry = body["output"]
    assert first == {"child": f"{instance_id}:0", "parent": instance_id, "value": 9}
    assert second == {"child": f"{instance_id}-named", "parent": instance_id, "value": 16}
    assert retried == "child ok after 2"
    assert named_retry == "child ok after 2"
    assert len(events_of(body, "SubOrchestrationInstanceFailed")) == 2
    named = status(host, f"{instance_id}-r")
    assert named["runtimeStatus"] == "Completed"


def test_continue_as_new_restarts_with_new_input(host: DevhostProcess) -> None:
    instance_id = start(host, "counter", {"n": 0})
    body = wait_for(host, instance_id)
    assert body["output"] == {"n": 3}
    assert body["input"] == {"n": 3}
    started = events_of(body, "ExecutionStarted")
    assert len(started) == 1 and started[0]["Input"] == {"n": 3}


def test_input_uuid_and_time_are_replay_safe(host: DevhostProcess) -> None:
    body = wait_for(host, start(host, "replay_safe", {"a": [1, 2]}))
    output = body["output"]
    assert output["input"] == {"a": [1, 2]}
    assert output["first"] != output["second"]
    assert output["moment"].startswith(body["createdTime"][:10])


def test_activities_run_in_parallel_up_to_the_configured_limit(host: DevhostProcess) -> None:
    body = wait_for(host, start(host, "parallel_probe"))
    assert 2 <= body["output"] <= 4


def test_many_instances_progress_together(host: DevhostProcess) -> None:
    started = time.monotonic()
    instances = [start(host, "timer", 1) for _ in range(15)]
    for instance_id in instances:
        assert wait_for(host, instance_id)["runtimeStatus"] == "Completed"
    assert time.monotonic() - started < 8
