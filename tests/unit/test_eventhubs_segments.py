"""The event log's segments: many events a row, read back exactly from any position, and logs
written a row per event (schema 1) converted when opened."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded.eventlog import segments
from embedded.eventlog.log import EventLog, NewEvent, PropertyValue, event_log_path
from embedded.eventlog.records import RECORD_HEADER_BYTES, encode_properties

pytestmark = pytest.mark.unit

_MOMENT = datetime(2024, 5, 1, tzinfo=UTC)
_SCHEMA_1 = """
CREATE TABLE hubs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    partition_count INTEGER NOT NULL, created_us INTEGER NOT NULL,
    round_robin INTEGER NOT NULL DEFAULT 0);
CREATE TABLE partitions (hub_id INTEGER NOT NULL, partition INTEGER NOT NULL,
    next_sequence INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    last_enqueued_us INTEGER NOT NULL, PRIMARY KEY (hub_id, partition)) WITHOUT ROWID;
CREATE TABLE events (hub_id INTEGER NOT NULL, partition INTEGER NOT NULL,
    sequence_number INTEGER NOT NULL, offset INTEGER NOT NULL, enqueued_us INTEGER NOT NULL,
    partition_key TEXT, properties TEXT, body BLOB NOT NULL,
    PRIMARY KEY (hub_id, partition, sequence_number)) WITHOUT ROWID;
CREATE TABLE checkpoints (hub_id INTEGER NOT NULL, consumer_group TEXT NOT NULL,
    partition INTEGER NOT NULL, sequence_number INTEGER NOT NULL, offset INTEGER NOT NULL,
    updated_us INTEGER NOT NULL, PRIMARY KEY (hub_id, consumer_group, partition)) WITHOUT ROWID;
PRAGMA user_version=1;
"""

property_values = st.none() | st.text(max_size=10) | st.integers(-(2**40), 2**40) | st.binary()
events = st.lists(
    st.tuples(
        st.binary(max_size=300),
        st.none() | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20),
        st.none() | st.dictionaries(st.text(max_size=5), property_values, max_size=3),
    ),
    min_size=1,
    max_size=60,
)


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog(event_log_path(tmp_path)) as opened:
        yield opened


@settings(max_examples=150, deadline=None)
@given(
    events=events,
    first=st.integers(0, 2**40),
    after=st.integers(-1, 80),
    limit=st.integers(1, 70),
)
def test_a_segment_gives_back_exactly_the_events_asked_for(
    events: list[tuple[bytes, str | None, dict[str, PropertyValue] | None]],
    first: int,
    after: int,
    limit: int,
) -> None:
    properties = [encode_properties(i, p) for i, (_, _, p) in enumerate(events)]
    segment = segments.encode(
        first, 1000, 5, [e[0] for e in events], [e[1] for e in events], properties
    )
    assert segment.last_sequence == first + len(events) - 1
    after_sequence = first + after - 1 if after >= 0 else -1
    read = segments.decode(
        3,
        _MOMENT,
        segment.first_sequence,
        segment.first_offset,
        segment.lengths,
        segment.bodies,
        segment.partition_keys,
        segment.properties,
        after_sequence,
        limit,
    )
    offsets = [1000]
    for body, _, _ in events[:-1]:
        offsets.append(offsets[-1] + len(body) + RECORD_HEADER_BYTES)
    assert segment.last_offset == offsets[-1]
    expected = [
        (first + i, offsets[i], key, props or {}, body)
        for i, (body, key, props) in enumerate(events)
        if first + i > after_sequence
    ][:limit]
    assert [
        (e.sequence_number, e.offset, e.partition_key, e.properties, e.body) for e in read
    ] == expected
    assert all(e.partition == 3 and e.enqueued_time == _MOMENT for e in read)


def test_segments_split_by_count_and_by_bytes() -> None:
    count = segments.MAX_SEGMENT_EVENTS
    assert [len(r) for r in segments.runs([1] * (2 * count + 5))] == [count, count, 5]
    half = segments.MAX_SEGMENT_BYTES // 2
    assert [len(r) for r in segments.runs([half, half, 1, half])] == [2, 2]
    assert list(segments.runs([])) == []
    # An event larger than the byte limit still gets a segment of its own.
    big = segments.MAX_SEGMENT_BYTES + 1
    assert [len(r) for r in segments.runs([big, 1])] == [1, 1]


def test_a_large_append_reads_back_across_segments_from_any_position(
    event_log: EventLog,
) -> None:
    count = segments.MAX_SEGMENT_EVENTS * 2 + 100
    positions = event_log.append_batch(
        "hub", [(str(n).encode(), None, None) for n in range(count)], partition_id=1
    )
    connection = sqlite3.connect(event_log.path)
    rows = connection.execute("SELECT first_sequence, last_sequence FROM segments").fetchall()
    connection.close()
    assert sorted(rows) == [(0, 1023), (1024, 2047), (2048, count - 1)]
    for after in (-1, 0, 1022, 1023, 1024, 2047, count - 2, count - 1):
        read = event_log.read("hub", 1, after, 1500)
        expected = [str(n).encode() for n in range(after + 1, min(count, after + 1501))]
        assert [e.body for e in read] == expected
        assert [e.offset for e in read] == [p.offset for p in positions[after + 1 :]][:1500]


def test_a_log_written_a_row_per_event_is_converted_when_opened(tmp_path: Path) -> None:
    path = event_log_path(tmp_path)
    path.parent.mkdir(parents=True)
    connection = sqlite3.connect(path)
    connection.executescript(_SCHEMA_1)
    connection.execute("INSERT INTO hubs VALUES (1, 'hub', 2, 0, 0)")
    rows, offset = [], 0
    for sequence in range(5):  # two appends in partition 0: at 100 µs, then at 200 µs
        body = f"p0-{sequence}".encode()
        rows.append((1, 0, sequence, offset, 100 if sequence < 3 else 200, "k", None, body))
        offset += len(body) + RECORD_HEADER_BYTES
    rows.append((1, 1, 7, 900, 300, None, '{"n":1}', b"p1-7"))  # 0-6 purged
    connection.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.executemany(
        "INSERT INTO partitions VALUES (1, ?, ?, ?, ?)", [(0, 5, offset, 200), (1, 8, 920, 300)]
    )
    connection.execute("INSERT INTO checkpoints VALUES (1, '$default', 0, 2, 14, 0)")
    connection.commit()
    connection.close()

    with EventLog(path) as event_log:
        first = event_log.read("hub", 0, -1, 100)
        assert [(e.sequence_number, e.offset, e.body) for e in first] == [
            (r[2], r[3], r[7]) for r in rows[:5]
        ]
        assert [e.enqueued_time.microsecond for e in first] == [100, 100, 100, 200, 200]
        [moved] = event_log.read("hub", 1, -1, 100)
        assert (moved.sequence_number, moved.offset, moved.properties) == (7, 900, {"n": 1})
        assert event_log.checkpoints("hub", "$Default")[0].sequence_number == 2
        [new] = event_log.append_batch("hub", [NewEvent(b"new", "k")])
        assert new.sequence_number == (5 if new.partition == 0 else 8)
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone() == (2,)
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    assert "events" not in tables
    assert connection.execute("SELECT COUNT(*) FROM segments").fetchone() == (4,)
    connection.close()
