"""The local Event Hubs log: partitions, sequence numbers, offsets, retention, checkpoints."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from embedded.eventlog.log import (
    EventLog,
    EventTooLarge,
    InvalidEvent,
    InvalidName,
    InvalidPartition,
    LogSettings,
    NewEvent,
    PropertyValue,
    UnknownHub,
    event_log_path,
    namespace_for_connection,
    watch_appends,
)
from embedded.eventlog.partitioning import partition_for_key, partition_key_hash
from embedded.eventlog.settings import EventHubSettingError
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit

# Expected hashes from the Azure SDK's own PartitionResolver tests (azure-sdk-for-net).
SDK_HASHES = {
    "7": -15263,
    "131": 30562,
    "7149583486996073602": 12977,
    "FWfAT": -22341,
    "sOdeEAsyQoEuEFPGerWO": -6503,
    "FAyAIctPeCgmiwLKbJcyswoHglHVjQdvtBowLACDNORsYvOcLddNJYDm"
    "hAVkbyLOrHTKLneMNcbgWVlasVywOByANjs": 5226,
    "!c*_!I@1^c": 15372,
    "p4*!jioeO/z-!-;w:dh": -3104,
    "$0cb": 26269,
    "-4189260826195535198": 453,
}


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog(event_log_path(tmp_path)) as opened:
        yield opened


@pytest.mark.parametrize(("key", "expected"), SDK_HASHES.items())
def test_partition_key_hash_matches_event_hubs(key: str, expected: int) -> None:
    assert partition_key_hash(key) == expected


def test_partition_keys_spread_evenly() -> None:
    for count in (4, 32):
        spread = Counter(partition_for_key(f"device-{n}", count) for n in range(20_000))
        assert set(spread) == set(range(count))
        expected = 20_000 / count
        assert all(abs(hits - expected) < expected * 0.2 for hits in spread.values()), spread


def test_a_key_always_lands_in_the_same_partition(event_log: EventLog) -> None:
    positions = event_log.append_batch("orders", [(b"x", "account-17", None)] * 5)
    positions += event_log.append_batch("orders", [(b"y", "account-17", None)] * 5)
    assert {p.partition for p in positions} == {partition_for_key("account-17", 4)}
    assert [p.sequence_number for p in positions] == list(range(10))


def test_sequence_numbers_are_contiguous_per_partition_and_offsets_grow(
    event_log: EventLog,
) -> None:
    for batch in range(5):
        event_log.append_batch(
            "orders", [(b"b" * n, f"k{n % 50}", None) for n in range(batch * 40, batch * 40 + 40)]
        )
    for partition in range(4):
        events = event_log.read("orders", partition, -1, 1000)
        assert [e.sequence_number for e in events] == list(range(len(events)))
        offsets = [e.offset for e in events]
        assert offsets[0] == 0 and all(a < b for a, b in zip(offsets, offsets[1:], strict=False))
        times = [e.enqueued_time for e in events]
        assert all(t.tzinfo is UTC for t in times) and times == sorted(times)
    assert sum(len(event_log.read("orders", p, -1, 1000)) for p in range(4)) == 200


def test_keyless_events_go_round_robin_across_batches_and_writers(tmp_path: Path) -> None:
    path = event_log_path(tmp_path)
    with EventLog(path) as first, EventLog(path) as second:
        positions = first.append_batch("hub", [(b"a", None, None)] * 3)
        positions += second.append_batch("hub", [(b"b", None, None)] * 5)
    assert [p.partition for p in positions] == [0, 1, 2, 3, 0, 1, 2, 3]


def test_read_pages_through_a_partition(event_log: EventLog) -> None:
    event_log.append_batch(
        "hub", [(str(n).encode(), None, None) for n in range(10)], partition_id=2
    )
    first = event_log.read("hub", 2, -1, 4)
    rest = event_log.read("hub", 2, first[-1].sequence_number, 100)
    assert [e.body for e in first + rest] == [str(n).encode() for n in range(10)]
    assert event_log.read("hub", 1) == []
    assert event_log.read("no-such-hub", 0) == []
    with pytest.raises(InvalidPartition):
        event_log.read("hub", 4)


def test_properties_and_system_properties_are_kept(event_log: EventLog) -> None:
    properties: dict[str, PropertyValue] = {
        "type": "reading",
        "n": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        "raw": b"\0",
    }
    [position] = event_log.append_batch("hub", [NewEvent(b"{}", "dev-1", properties)])
    [event] = event_log.read("hub", position.partition)
    assert event.properties == properties
    assert event.partition_key == "dev-1"
    assert event.system_properties == {
        "x-opt-sequence-number": 0,
        "x-opt-offset": "0",
        "x-opt-enqueued-time": position.enqueued_time,
        "x-opt-partition-key": "dev-1",
    }


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (("text", None, None), InvalidEvent),
        ((b"x" * (1024 * 1024 + 1), None, None), EventTooLarge),
        ((b"x", 17, None), InvalidEvent),
        ((b"x", "\ud800", None), InvalidEvent),
        ((b"x", None, {"when": datetime.now(UTC)}), InvalidEvent),
        ((b"x", None, {1: "a"}), InvalidEvent),
        ((b"x", None), InvalidEvent),
    ],
)
def test_a_bad_event_rejects_the_whole_batch(
    event_log: EventLog, event: tuple[object, ...], error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        event_log.append_batch("hub", [(b"fine", None, None), event])  # type: ignore[list-item]
    assert raised.value.index == 1  # type: ignore[attr-defined]
    assert all(event_log.read("hub", p) == [] for p in range(4))


def test_partition_id_and_names_are_checked(event_log: EventLog) -> None:
    with pytest.raises(InvalidEvent):
        event_log.append_batch("hub", [(b"x", "key", None)], partition_id=0)
    with pytest.raises(InvalidPartition):
        event_log.append_batch("hub", [(b"x", None, None)], partition_id=4)
    for name in ("", "-hub", "hub!", "a" * 257):
        with pytest.raises(InvalidName):
            event_log.append_batch(name, [(b"x", None, None)])
    assert event_log.append_batch("hub", []) == []


def test_hub_names_are_case_insensitive(event_log: EventLog) -> None:
    event_log.append_batch("Orders", [(b"x", None, None)])
    event_log.append_batch("ORDERS", [(b"y", None, None)])
    assert event_log.hubs() == {"orders": 4}
    assert event_log.last_sequence_numbers("orders") == [0, 0, -1, -1]


def test_partition_counts_come_from_settings_and_stay_fixed(tmp_path: Path) -> None:
    settings = {"DEVHOST_EVENTHUB_PARTITIONS": "8", "DEVHOST_EVENTHUB_PARTITIONS__Big": "32"}
    with EventLog.for_data_dir(tmp_path, settings, "EventHubConnection") as event_log:
        event_log.append_batch("small", [(b"x", None, None)])
        assert event_log.ensure_hub("big") == 32
        assert event_log.ensure_hub("explicit", 2) == 2
        assert event_log.hubs() == {"small": 8, "big": 32, "explicit": 2}
        assert event_log.path == event_log_path(tmp_path, "local").resolve()
    with EventLog(event_log_path(tmp_path)) as reopened:
        assert reopened.ensure_hub("small", 3) == 8


@pytest.mark.parametrize(
    "settings",
    [
        {"DEVHOST_EVENTHUB_PARTITIONS": "0"},
        {"DEVHOST_EVENTHUB_PARTITIONS": "four"},
        {"DEVHOST_EVENTHUB_PARTITIONS__hub": "2000"},
        {"DEVHOST_EVENTHUB_RETENTION_HOURS": "-1"},
        {"DEVHOST_EVENTHUB_RETENTION_HOURS": "soon"},
    ],
)
def test_bad_settings_name_the_setting(settings: dict[str, str]) -> None:
    with pytest.raises(EventHubSettingError, match=next(iter(settings))):
        LogSettings.from_settings(settings)


def test_namespaces_come_from_the_connection() -> None:
    settings = {
        "Conn": "Endpoint=sb://contoso-events.servicebus.windows.net/;SharedAccessKeyName=x;"
        "SharedAccessKey=y",
        "Identity__fullyQualifiedNamespace": "Fabrikam.servicebus.windows.net",
        "Emulator": "Endpoint=sb://localhost;SharedAccessKeyName=a;SharedAccessKey=b;"
        "UseDevelopmentEmulator=true;",
    }
    assert namespace_for_connection(settings, "Conn") == "contoso-events"
    assert namespace_for_connection(settings, "Identity") == "fabrikam"
    assert namespace_for_connection(settings, "Emulator") == "local"
    assert namespace_for_connection(settings, "Missing") == "local"
    assert namespace_for_connection(settings, None) == "local"
    assert event_log_path("/data", "contoso-events") == Path(
        "/data/eventhubs/contoso-events.sqlite3"
    )
    with pytest.raises(EventHubSettingError):
        event_log_path("/data", "../escape")


def test_retention_deletes_only_expired_events(tmp_path: Path) -> None:
    settings = LogSettings(retention=timedelta(hours=2))
    with EventLog(event_log_path(tmp_path), settings=settings) as event_log:
        old = event_log.append_batch("hub", [(b"old", None, None)] * 6)
        later = old[0].enqueued_time + timedelta(hours=1)
        assert event_log.purge_expired(now=later) == 0
        assert event_log.purge_expired(now=later + timedelta(hours=1, seconds=1)) == 6
        assert all(event_log.read("hub", p) == [] for p in range(4))
        info = event_log.partition_info("hub", 0)
        assert info.is_empty and info.beginning_sequence_number == 2
        assert info.last_enqueued_sequence_number == 1
        [new] = event_log.append_batch("hub", [(b"new", None, None)], partition_id=0)
        assert new.sequence_number == 2
        assert event_log.purge_expired() == 0
        assert [e.body for e in event_log.read("hub", 0)] == [b"new"]


def test_purged_events_leave_no_trace_in_the_log_files(tmp_path: Path) -> None:
    """Expired bodies (raw personal data) are overwritten, not just unlinked from the b-tree:
    neither the database file nor its write-ahead log still holds them."""
    settings = LogSettings(retention=timedelta(hours=1))
    marker = b"4111111111111111-raw-card"
    path = event_log_path(tmp_path)
    with EventLog(path, settings=settings) as event_log:
        old = event_log.append_batch(
            "hub", [(marker + bytes([n]) * 3000, None, None) for n in range(40)]
        )
        assert event_log.purge_expired(now=old[0].enqueued_time + timedelta(hours=2)) == 40
        assert all(event_log.read("hub", p) == [] for p in range(4))
        for file in path.parent.iterdir():
            assert marker not in file.read_bytes(), file.name


def test_checkpoints_are_per_hub_group_and_partition(tmp_path: Path) -> None:
    path = event_log_path(tmp_path)
    with EventLog(path) as event_log:
        event_log.append_batch("hub", [(b"x", None, None)] * 8)
        assert event_log.checkpoints("hub", "$Default") == {}
        assert event_log.checkpoints("other", "$Default") == {}
        event_log.set_checkpoint("hub", "$Default", 1, 0, 0)
        event_log.set_checkpoint("hub", "$Default", 1, 1, 17)
        event_log.set_checkpoint("hub", "audit", 3, 0, 0)
        with pytest.raises(UnknownHub):
            event_log.set_checkpoint("other", "$Default", 0, 0, 0)
        with pytest.raises(InvalidPartition):
            event_log.set_checkpoint("hub", "$Default", 9, 0, 0)
    with EventLog(path) as reopened:
        saved = reopened.checkpoints("HUB", "$default")
        assert {p: (c.sequence_number, c.offset) for p, c in saved.items()} == {1: (1, 17)}
        assert list(reopened.checkpoints("hub", "audit")) == [3]


def test_appends_in_this_process_are_announced(event_log: EventLog, tmp_path: Path) -> None:
    heard: list[tuple[str, frozenset[int]]] = []
    stop = watch_appends(event_log.path, lambda hub, partitions: heard.append((hub, partitions)))
    with EventLog(event_log_path(tmp_path)) as other_writer:
        other_writer.append_batch("Hub", [(b"x", None, None)] * 2)
    stop()
    event_log.append_batch("hub", [(b"x", None, None)])
    assert heard == [("hub", frozenset({0, 1}))]


WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from embedded.eventlog.log import EventLog
    log = EventLog(sys.argv[1], busy_timeout_s=60)
    name = sys.argv[2]
    for batch in range(40):
        log.append_batch("shared", [
            (f"{name}-{batch}-{n}".encode(), f"key-{n % 9}" if n % 2 else None, {"w": name})
            for n in range(25)
        ])
    print("appended", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # a crash right after the answer
    """
)


def test_concurrent_writers_in_two_processes_lose_nothing(tmp_path: Path) -> None:
    path = event_log_path(tmp_path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name],
            cwd=PROJECT_ROOT,
            env={"PYTHONPATH": str(PROJECT_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    outcomes = [writer.communicate(timeout=60) for writer in writers]
    for out, err in outcomes:
        assert out == b"appended\n", err.decode()
    with EventLog(path) as event_log:
        bodies: list[bytes] = []
        for partition in range(4):
            events = event_log.read("shared", partition, -1, 10_000)
            assert [e.sequence_number for e in events] == list(range(len(events)))
            bodies += [e.body for e in events]
    expected = {f"{w}-{b}-{n}".encode() for w in "ab" for b in range(40) for n in range(25)}
    assert len(bodies) == len(expected) == 2000
    assert set(bodies) == expected
