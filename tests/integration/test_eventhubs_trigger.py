"""The devhost's Event Hubs end to end: publish, trigger, checkpoint, crash and resume."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from embedded.eventlog.log import EventLog, event_log_path
from tests.conftest import StartDevhost

pytestmark = pytest.mark.integration

APP = "eventhubs"
HUB = "telemetry"
BATCH_LIMIT = 5  # the fixture's host.json maxEventBatchSize


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _wait_for(
    path: Path, condition: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _records(path)
        if condition(records):
            return records
        time.sleep(0.05)
    raise TimeoutError(f"condition not met within {timeout} s; records: {_records(path)[-5:]}")


def _delivered(records: list[dict[str, Any]], fn: str) -> set[tuple[int, int]]:
    return {(r["partition"], s) for r in records if r["fn"] == fn for s in r["seqs"]}


def _eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout} s")
        time.sleep(0.05)


def _checkpoints(event_log: EventLog) -> dict[int, int]:
    return {p: c.sequence_number for p, c in event_log.checkpoints(HUB, "$Default").items()}


def _publish(data_dir: Path, bodies: list[str]) -> set[tuple[int, int]]:
    """Publish from this process, as any simulator would, while the devhost polls the log."""
    with EventLog(event_log_path(data_dir)) as event_log:
        positions = event_log.append_batch(
            HUB, [(b.encode(), f"device-{n % 6}", {"n": n}) for n, b in enumerate(bodies)]
        )
    return {(p.partition, p.sequence_number) for p in positions}


def _assert_in_order(records: list[dict[str, Any]], fn: str) -> None:
    by_partition: dict[int, list[int]] = defaultdict(list)
    for record in records:
        if record["fn"] == fn:
            by_partition[record["partition"]].extend(record["seqs"])
    for partition, seqs in by_partition.items():
        assert seqs == list(range(len(seqs))), (fn, partition, seqs)


def test_events_published_before_and_after_start_are_all_delivered_in_order(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    record_file, data_dir = tmp_path / "received.jsonl", tmp_path / "data"
    expected = _publish(data_dir, [f"early-{n}" for n in range(23)])
    host = start_devhost(APP, env={"EH_RECORD_FILE": str(record_file)}, data_dir=data_dir)
    expected |= _publish(data_dir, [f"late-{n}" for n in range(17)])
    response = requests.post(
        host.url("/api/publish"), data="\n".join(f"http-{n}" for n in range(9)), timeout=10
    )
    assert response.status_code == 202

    records = _wait_for(
        record_file,
        lambda rs: len(_delivered(rs, "many")) == 49 and len(_delivered(rs, "one")) == 49,
    )
    assert expected <= _delivered(records, "many")
    for fn in ("many", "one"):
        _assert_in_order(records, fn)
        bodies = sorted(b for r in records if r["fn"] == fn for b in r["bodies"])
        assert len(bodies) == 49 and sum(b.startswith("http-") for b in bodies) == 9
    many = [r for r in records if r["fn"] == "many"]
    assert all(1 <= len(r["seqs"]) <= BATCH_LIMIT for r in many)
    assert any(len(r["seqs"]) == BATCH_LIMIT for r in many)
    assert all(r["meta_seqs"] == r["seqs"] for r in many)
    assert all(a < b for r in many for a, b in zip(r["offsets"], r["offsets"][1:], strict=False))
    assert all(t.endswith("+00:00") for r in many for t in r["enqueued"])
    early = next(r for r in many if r["bodies"][0].startswith("early-"))
    assert early["keys"][0].startswith("device-") and "n" in early["meta_props"][0]
    single = [r for r in records if r["fn"] == "one"]
    assert all(r["type"] == "EventHubEvent" and len(r["seqs"]) == 1 for r in single)
    assert all(r["meta_seqs"] == r["seqs"] for r in single)

    with EventLog(event_log_path(data_dir)) as event_log:
        tails = {p: t for p, t in enumerate(event_log.last_sequence_numbers(HUB)) if t >= 0}
        _eventually(lambda: _checkpoints(event_log) == tails)


def test_after_sigkill_delivery_resumes_from_the_checkpoint(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    record_file, data_dir = tmp_path / "received.jsonl", tmp_path / "data"
    expected = _publish(data_dir, [f"event-{n}" for n in range(120)])
    env = {"EH_RECORD_FILE": str(record_file), "EH_SLEEP_S": "0.25"}
    host = start_devhost(APP, env=env, data_dir=data_dir)
    _wait_for(record_file, lambda rs: sum(r["fn"] == "many" for r in rs) >= 6)
    host.kill()
    before = _records(record_file)
    first_pid = before[0]["pid"]
    with EventLog(event_log_path(data_dir)) as event_log:
        checkpoints = _checkpoints(event_log)
    assert len(_delivered(before, "many")) < len(expected), "the crash came too late"
    # Every checkpointed event was delivered before the crash.
    for partition, sequence in checkpoints.items():
        assert {(partition, s) for s in range(sequence + 1)} <= _delivered(before, "many")

    start_devhost(APP, env={**env, "EH_SLEEP_S": "0"}, data_dir=data_dir)
    records = _wait_for(record_file, lambda rs: _delivered(rs, "many") >= expected)
    after = [r for r in records if r["fn"] == "many" and r["pid"] != first_pid]
    assert _delivered(records, "many") == expected
    for partition in range(4):
        resumed = [s for r in after if r["partition"] == partition for s in r["seqs"]]
        start = checkpoints.get(partition, -1) + 1
        total = sum(1 for p, _ in expected if p == partition)
        assert resumed == list(range(start, total)), (partition, start, resumed)


def test_a_graceful_stop_finishes_and_checkpoints_batches_in_flight(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    record_file, data_dir = tmp_path / "received.jsonl", tmp_path / "data"
    expected = _publish(data_dir, [f"event-{n}" for n in range(60)])
    env = {"EH_RECORD_FILE": str(record_file), "EH_SLEEP_S": "0.4"}
    host = start_devhost(APP, env=env, data_dir=data_dir)
    _wait_for(record_file, lambda rs: any(r["fn"] == "many" for r in rs))
    assert host.stop() == 0
    before = _records(record_file)
    last_seen: dict[int, int] = {}
    for record in before:
        if record["fn"] == "many":
            last_seen[record["partition"]] = max(record["seqs"])
    with EventLog(event_log_path(data_dir)) as event_log:
        assert _checkpoints(event_log) == last_seen
    assert len(_delivered(before, "many")) < len(expected)

    start_devhost(APP, env={**env, "EH_SLEEP_S": "0"}, data_dir=data_dir)
    records = _wait_for(record_file, lambda rs: _delivered(rs, "many") >= expected)
    seqs = [(r["partition"], s) for r in records if r["fn"] == "many" for s in r["seqs"]]
    assert sorted(seqs) == sorted(expected), "an event was delivered twice or not at all"


def test_a_raising_function_does_not_stop_later_batches(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    record_file, data_dir = tmp_path / "received.jsonl", tmp_path / "data"
    host = start_devhost(APP, env={"EH_RECORD_FILE": str(record_file)}, data_dir=data_dir)
    with EventLog(event_log_path(data_dir)) as event_log:
        [failing] = event_log.append_batch(HUB, [(b"fail-now", "device-x", None)])
        _wait_for(record_file, lambda rs: "fail-now" in _bodies(rs, "many"))
        [later] = event_log.append_batch(HUB, [(b"after-failure", "device-x", None)])
        records = _wait_for(record_file, lambda rs: "after-failure" in _bodies(rs, "many"))
        assert later.partition == failing.partition
        host.wait_for_output('"outcome": "Failed"')
        time.sleep(0.3)
        records = _records(record_file)
        assert _bodies(records, "many").count("fail-now") == 1
        saved = event_log.checkpoints(HUB, "$Default")[later.partition]
        assert saved.sequence_number == later.sequence_number


def _bodies(records: list[dict[str, Any]], fn: str) -> list[str]:
    return [b for r in records if r["fn"] == fn for b in r["bodies"]]
