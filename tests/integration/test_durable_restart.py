"""Durable state survives a SIGKILL: timers fire on time, fan-outs finish, events still land."""

from __future__ import annotations

import time

import pytest

from tests.conftest import StartDevhost
from tests.durable_http import (
    client,
    events_of,
    start,
    status,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_a_timer_fires_on_time_after_sigkill_and_restart(start_devhost: StartDevhost) -> None:
    host = start_devhost("durable_features")
    instance_id = start(host, "timer", 3)
    wait_for(host, instance_id, ("Running",))
    host.kill()
    time.sleep(1)
    host = start_devhost("durable_features", data_dir=host.data_dir)
    body = wait_for(host, instance_id, timeout=15)
    assert body["runtimeStatus"] == "Completed"
    fire_at, woke = body["output"]["fire_at"], body["output"]["woke"]
    assert woke >= fire_at
    fired = events_of(body, "TimerFired")[0]
    assert fired["FireAt"].startswith(fire_at[:19])


def test_a_fan_out_completes_after_sigkill_with_its_history_kept(
    start_devhost: StartDevhost,
) -> None:
    host = start_devhost("durable_features")
    instance_id = start(host, "slow_fan_out", 12)
    deadline = time.monotonic() + 15
    before: list[dict[str, object]] = []
    while len(before) < 3 and time.monotonic() < deadline:
        before = events_of(
            status(host, instance_id, showHistory="true", showHistoryOutput="true"), "TaskCompleted"
        )
        time.sleep(0.05)
    assert 3 <= len(before) < 12
    host.kill()
    host = start_devhost("durable_features", data_dir=host.data_dir)
    body = wait_for(host, instance_id, timeout=30)
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == sum(range(12))
    after = events_of(body, "TaskCompleted")
    assert len(after) == 12
    assert after[: len(before)] == before  # no completed history is lost
    assert "durable: resumed 1 instances" in host.output()


def test_a_waiting_instance_takes_events_after_restart(start_devhost: StartDevhost) -> None:
    host = start_devhost("durable_features")
    instance_id = start(host, "approval")
    wait_for(host, instance_id, ("Running",))
    host.kill()
    host = start_devhost("durable_features", data_dir=host.data_dir)
    client(host, "raise_event", id=instance_id, name="approve", data=["after", "restart"])
    assert wait_for(host, instance_id)["output"] == ["after", "restart"]
