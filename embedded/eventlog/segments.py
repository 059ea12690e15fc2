"""How the event log stores events: in segments, one row for a run of a partition's events.

An append writes one segment per partition it touches (split past `MAX_SEGMENT_EVENTS` events
or `MAX_SEGMENT_BYTES` of bodies), as Event Hubs and Kafka store record batches. A segment
holds its events' bodies end to end, their lengths (little-endian 32-bit), and their partition
keys and properties as JSON arrays (NULL when every event has none); its events share one
enqueued time and have consecutive sequence numbers.

Why not a row per event: each row SQLite steps releases the GIL, and beside a busy Python
thread (a function running) getting it back can take a switch interval (5 ms). A row per event
cost that per event: appends fell from 161,000 to 243 events/s and reads from 674,000 to 873
(`python -m benchmarks eventlog`). A segment is stepped once for up to 1,024 events, and an
append makes five SQLite calls: 287,000 and 913,000 events/s alone, 15,100 and 12,600 beside
the busy thread.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import accumulate
from typing import Any, NamedTuple

from embedded.eventlog.records import RECORD_HEADER_BYTES, StoredEvent, decode_properties

MAX_SEGMENT_EVENTS = 1024
MAX_SEGMENT_BYTES = 16 * 1024 * 1024


class Segment(NamedTuple):
    """One row of the `segments` table, ready to insert (after hub id and partition)."""

    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int
    enqueued_us: int
    lengths: bytes
    bodies: bytes
    partition_keys: str | None
    properties: str | None


def runs(sizes: Sequence[int]) -> Iterator[range]:
    """The index ranges that make up the segments of events with these body sizes."""
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if index > start and (
            index - start >= MAX_SEGMENT_EVENTS or total + size > MAX_SEGMENT_BYTES
        ):
            yield range(start, index)
            start, total = index, 0
        total += size
    if start < len(sizes):
        yield range(start, len(sizes))


def encode(
    first_sequence: int,
    first_offset: int,
    enqueued_us: int,
    bodies: Sequence[bytes],
    partition_keys: Sequence[str | None],
    properties: Sequence[str | None],
) -> Segment:
    """A segment of consecutive events, the first at `first_sequence` and `first_offset`."""
    count = len(bodies)
    sizes = list(map(len, bodies))
    last_offset = first_offset + sum(sizes[:-1]) + RECORD_HEADER_BYTES * (count - 1)
    return Segment(
        first_sequence,
        first_sequence + count - 1,
        first_offset,
        last_offset,
        enqueued_us,
        struct.pack(f"<{count}I", *sizes),
        b"".join(bodies),
        _json_or_null(partition_keys),
        _json_or_null(properties),
    )


def decode(
    partition: int,
    enqueued_time: datetime,
    first_sequence: int,
    first_offset: int,
    lengths: bytes,
    bodies: bytes,
    partition_keys: str | None,
    properties: str | None,
    after_sequence: int,
    max_count: int,
) -> list[StoredEvent]:
    """Up to `max_count` of the segment's events with sequence numbers after `after_sequence`."""
    count = len(lengths) // 4
    sizes = struct.unpack(f"<{count}I", lengths)
    ends = list(accumulate(sizes))
    skip = max(0, after_sequence + 1 - first_sequence)
    stop = min(count, skip + max_count)
    keys = json.loads(partition_keys) if partition_keys is not None else None
    props = json.loads(properties) if properties is not None else None
    decoded: dict[str | None, dict[str, Any]] = {}  # events of a segment often share them
    events: list[StoredEvent] = []
    append = events.append
    for index in range(skip, stop):
        text = None if props is None else props[index]
        found = decoded.get(text)
        if found is None:
            found = decoded[text] = decode_properties(text)
        end = ends[index]
        start = end - sizes[index]
        append(
            StoredEvent(
                partition,
                first_sequence + index,
                first_offset + start + RECORD_HEADER_BYTES * index,
                enqueued_time,
                None if keys is None else keys[index],
                dict(found),
                bodies[start:end],
            )
        )
    return events


def _json_or_null(values: Sequence[str | None]) -> str | None:
    if all(value is None for value in values):
        return None
    return json.dumps(values, separators=(",", ":"))
