"""Retry policies end to end: a real devhost runs the `retries` fixture app.

`land_batch` (Event Hubs, fixed delay) fails its first attempts at a batch holding a `flaky`
body; `yearly` (timer, run on startup, exponential backoff) fails its first two runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from embedded.eventlog.log import EventLog, event_log_path
from tests.conftest import StartDevhost

pytestmark = pytest.mark.integration

APP = "retries"
HUB = "orders"  # RETRY_HUB in the fixture's local.settings.json
PARTITIONS = 2  # DEVHOST_EVENTHUB_PARTITIONS there
# With maxEventBatchSize 3, partition 0 is read as [0, 1, 2], [3, 4, 5], [6].
PARTITION_0 = ["flaky-0", "a-1", "a-2", "b-3", "b-4", "b-5", "c-6"]
PARTITION_1 = ["p-0", "p-1", "p-2", "p-3"]


def _publish(data_dir: Path) -> None:
    with EventLog(event_log_path(data_dir)) as event_log:
        event_log.ensure_hub(HUB, PARTITIONS)
        for partition, bodies in enumerate([PARTITION_0, PARTITION_1]):
            event_log.append_batch(
                HUB, [(body.encode(), None, None) for body in bodies], partition_id=partition
            )


def _attempts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _wait_for(
    path: Path, condition: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempts = _attempts(path)
        if condition(attempts):
            return attempts
        time.sleep(0.05)
    raise TimeoutError(f"not met within {timeout} s; attempts: {_attempts(path)[-6:]}")


def _of(attempts: list[dict[str, Any]], fn: str, partition: int | None = None) -> list[Any]:
    return [a for a in attempts if a["fn"] == fn and a.get("partition") == partition]


def _batches(attempts: list[dict[str, Any]], partition: int) -> list[tuple[list[int], str]]:
    return [(a["seqs"], a["outcome"]) for a in _of(attempts, "land_batch", partition)]


def _landed(attempts: list[dict[str, Any]], partition: int) -> list[int]:
    return [
        s for seqs, outcome in _batches(attempts, partition) if outcome == "landed" for s in seqs
    ]


def _checkpoints(data_dir: Path) -> dict[int, int]:
    with EventLog(event_log_path(data_dir)) as event_log:
        saved = event_log.checkpoints(HUB, "$Default")
    return {partition: checkpoint.sequence_number for partition, checkpoint in saved.items()}


def _env(attempts: Path, **settings: str) -> dict[str, str]:
    return {"RETRY_ATTEMPTS_FILE": str(attempts), **settings}


def test_a_failing_batch_is_redelivered_and_lands_once_it_succeeds_in_order(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    attempts_file, data_dir = tmp_path / "attempts.jsonl", tmp_path / "data"
    _publish(data_dir)
    host = start_devhost(APP, env=_env(attempts_file, RETRY_FAIL_FIRST="3"), data_dir=data_dir)
    attempts = _wait_for(attempts_file, lambda a: len(_landed(a, 0)) == 7)
    first = [0, 1, 2]
    assert _batches(attempts, 0) == [
        (first, "failed"),
        (first, "failed"),
        (first, "failed"),
        (first, "landed"),
        ([3, 4, 5], "landed"),
        ([6], "landed"),
    ]
    retries = [a for a in _of(attempts, "land_batch", 0) if a["seqs"] == first]
    assert [(a["retry_count"], a["max_retry_count"]) for a in retries] == [
        (0, -1),
        (1, -1),
        (2, -1),
        (3, -1),
    ]
    assert retries[0]["previous_error"] == ""
    assert retries[1]["previous_error"].startswith("RuntimeError: attempt 1 at partition 0")
    # The other partition is not held up, and lands once.
    assert _landed(attempts, 1) == [0, 1, 2, 3]
    deadline = time.monotonic() + 10
    while _checkpoints(data_dir) != {0: 6, 1: 3} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _checkpoints(data_dir) == {0: 6, 1: 3}
    output = host.output()
    assert output.count('"event": "retry", "function": "land_batch"') == 3
    assert "retry fixed_delay: retries indefinitely, 00:00:00 apart" in output


def test_with_a_finite_policy_the_batch_is_passed_over_after_the_last_retry(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    attempts_file, data_dir = tmp_path / "attempts.jsonl", tmp_path / "data"
    _publish(data_dir)
    env = _env(attempts_file, RETRY_FAIL_FIRST="1000", RETRY_MAX="2", RETRY_DELAY="00:00:01")
    host = start_devhost(APP, env=env, data_dir=data_dir)
    attempts = _wait_for(attempts_file, lambda a: _landed(a, 0) == [3, 4, 5, 6])
    assert _batches(attempts, 0)[:3] == [([0, 1, 2], "failed")] * 3
    times = [a["at"] for a in _of(attempts, "land_batch", 0) if a["seqs"] == [0, 1, 2]]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps), gaps  # delay_interval 00:00:01
    host.wait_for_output('"event": "retries_exhausted", "function": "land_batch"')
    deadline = time.monotonic() + 10
    while _checkpoints(data_dir).get(0) != 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _checkpoints(data_dir)[0] == 6


def test_a_timer_with_a_retry_policy_is_retried(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    attempts_file = tmp_path / "attempts.jsonl"
    host = start_devhost(APP, env=_env(attempts_file))
    attempts = _wait_for(attempts_file, lambda a: any(x["outcome"] == "ran" for x in a))
    runs = [(a["retry_count"], a["max_retry_count"], a["outcome"]) for a in _of(attempts, "yearly")]
    assert runs == [(0, 3, "failed"), (1, 3, "failed"), (2, 3, "ran")]
    assert "retry exponential_backoff: up to 3 retries, 00:00:00 to 00:00:01 apart" in (
        host.output()
    )


def test_sigterm_ends_indefinite_retries_at_once_and_the_batch_returns_after_restart(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    attempts_file, data_dir = tmp_path / "attempts.jsonl", tmp_path / "data"
    _publish(data_dir)
    # A minute between retries: only a stop that interrupts the wait can end this quickly.
    env = _env(attempts_file, RETRY_FAIL_FIRST="1000", RETRY_DELAY="00:01:00")
    host = start_devhost(APP, env=env, data_dir=data_dir)
    _wait_for(attempts_file, lambda a: len(_batches(a, 0)) == 1 and len(_landed(a, 1)) == 4)
    host.wait_for_output('"event": "retry", "function": "land_batch"')
    started = time.monotonic()
    assert host.stop() == 0
    assert time.monotonic() - started < 10  # far below the 60 s wait
    assert "devhost stopped" in host.output()
    assert 0 not in _checkpoints(data_dir)  # the batch was never acknowledged

    restarted = start_devhost(APP, env=_env(attempts_file, RETRY_FAIL_FIRST="0"), data_dir=data_dir)
    attempts = _wait_for(attempts_file, lambda a: len(_landed(a, 0)) == 7)
    assert _batches(attempts, 0) == [
        ([0, 1, 2], "failed"),
        ([0, 1, 2], "landed"),
        ([3, 4, 5], "landed"),
        ([6], "landed"),
    ]
    assert _landed(attempts, 1) == [0, 1, 2, 3]  # checkpointed before the stop: not redelivered
    restarted.stop()
