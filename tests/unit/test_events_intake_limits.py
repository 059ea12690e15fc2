"""The intake's limits: events per request, compact rejection answers, work off the event loop,
and compressed bodies inflated within the 1 MB limit."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.events import rejection_status
from shared.events.envelope import EventDecoder
from shared.events.errors import RequestRejected
from shared.events.intake import (
    BATCH,
    MAX_BODY_BYTES,
    MAX_EVENTS_PER_REQUEST,
    MAX_REJECTIONS_LISTED,
    EventIntake,
)
from shared.events.request_body import decoded_body, inflated
from tests.eventdata import event_intake, interaction, payment
from tests.fakes.publisher import FakePublisher

pytestmark = pytest.mark.unit


def intake() -> EventIntake:
    return event_intake(FakePublisher())


def array(items: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


async def test_a_megabyte_of_empty_objects_is_refused_before_any_is_decoded() -> None:
    body = array([b"{}"] * 349_524)
    assert len(body) <= MAX_BODY_BYTES
    with pytest.raises(RequestRejected) as caught:
        await intake().submit(body, BATCH)
    assert rejection_status(caught.value) == 413
    assert f"the limit is {MAX_EVENTS_PER_REQUEST}" in caught.value.message


async def test_the_event_limit_is_inclusive() -> None:
    events = [json.dumps(interaction(n)).encode() for n in range(MAX_EVENTS_PER_REQUEST)]
    result = await intake().submit(array(events), BATCH)
    assert result.accepted == MAX_EVENTS_PER_REQUEST
    with pytest.raises(RequestRejected):
        await intake().submit(array([*events, b"{}"]), BATCH)


async def test_a_long_rejection_list_is_answered_compactly() -> None:
    bad = [json.dumps(payment(n, currency="ZZZ")).encode() for n in range(300)]
    items = bad + [b"{}"] * (MAX_EVENTS_PER_REQUEST - 301) + [json.dumps(payment(1)).encode()]
    answer = (await intake().submit(array(items), BATCH)).to_json()
    assert answer["accepted"] == 1
    assert len(answer["rejected"]) == MAX_REJECTIONS_LISTED
    assert [r["index"] for r in answer["rejected"]] == list(range(MAX_REJECTIONS_LISTED))
    assert answer["rejected_total"] == MAX_EVENTS_PER_REQUEST - 1
    assert answer["rejected_by_reason"] == {
        "invalid_data": 300,
        "invalid_envelope": MAX_EVENTS_PER_REQUEST - 301,
    }
    assert len(json.dumps(answer)) < 40_000


async def test_a_short_rejection_list_is_answered_whole() -> None:
    items = [b"{}"] * MAX_REJECTIONS_LISTED
    answer = (await intake().submit(array(items), BATCH)).to_json()
    assert set(answer) == {"accepted", "rejected"}
    assert len(answer["rejected"]) == MAX_REJECTIONS_LISTED


class ThreadNoting(EventDecoder):
    """The real decoder, noting the thread each batch is decoded on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def decode_batch(self, bodies: Sequence[bytes | memoryview]) -> Any:
        self.threads.append(threading.get_ident())
        return super().decode_batch(bodies)


async def test_the_events_are_checked_off_the_event_loop() -> None:
    decoder = ThreadNoting()
    await event_intake(FakePublisher(), decoder).submit(array([b"{}"]), BATCH)
    assert decoder.threads and threading.get_ident() not in decoder.threads


async def test_the_loop_runs_while_a_large_request_is_checked() -> None:
    decoder = ThreadNoting()
    body = array([json.dumps(payment(n, currency="ZZZ")).encode() for n in range(2_500)])
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    before = ticks
    await event_intake(FakePublisher(), decoder).submit(body, BATCH)
    ticker.cancel()
    assert ticks > before


GZIP_BOMB = gzip.compress(b"\0" * (100 * MAX_BODY_BYTES))  # ~100 KB, 100 MB inflated


def test_a_gzip_bomb_is_refused_with_at_most_the_limit_inflated() -> None:
    pieces: list[int] = []
    with pytest.raises(RequestRejected) as caught:
        for piece in inflated(GZIP_BOMB, "gzip", MAX_BODY_BYTES, chunk=64 * 1024):
            pieces.append(len(piece))
    assert rejection_status(caught.value) == 413
    assert max(pieces) <= 64 * 1024
    assert sum(pieces) <= MAX_BODY_BYTES


async def test_a_gzip_bomb_posted_is_a_413() -> None:
    with pytest.raises(RequestRejected) as caught:
        await intake().submit(GZIP_BOMB, BATCH, {"Content-Encoding": "gzip"})
    assert (rejection_status(caught.value), caught.value.message) == (
        413,
        "the inflated body is over the limit of 1048576 bytes (1 MB)",
    )


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("GZIP", lambda data: gzip.compress(data[:10]) + gzip.compress(data[10:])),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),
        ("identity", lambda data: data),
    ],
)
async def test_compressed_batches_are_accepted(coding: str, compress: Any) -> None:
    body = json.dumps([payment(1), payment(2)]).encode()
    result = await intake().submit(compress(body), BATCH, {"content-encoding": coding})
    assert result.accepted == 2


@pytest.mark.parametrize(
    ("body", "coding", "status"),
    [
        (b"[]", "br", 415),
        (b"[]", "gzip, gzip", 415),
        (b"[]", "gzip", 400),
        (gzip.compress(b"[]")[:-12], "gzip", 400),
        (gzip.compress(b"[]") + b"junk", "gzip", 400),
        (zlib.compress(b"[]") + b"junk", "deflate", 400),
        (b"\x1f\x8b" + b"\0" * (MAX_BODY_BYTES - 1), "gzip", 413),
    ],
)
async def test_bodies_not_in_their_coding(body: bytes, coding: str, status: int) -> None:
    with pytest.raises(RequestRejected) as caught:
        await intake().submit(body, BATCH, {"content-encoding": coding})
    assert rejection_status(caught.value) == status
    assert caught.value.message


@given(st.binary(max_size=2_000), st.integers(min_value=0, max_value=3_000))
def test_gzip_round_trips_within_the_limit(data: bytes, limit: int) -> None:
    compressed = gzip.compress(data)
    if len(data) <= limit and len(compressed) <= limit:
        assert decoded_body(compressed, "gzip", limit) == data
    else:
        with pytest.raises(RequestRejected) as caught:
            decoded_body(compressed, "gzip", limit)
        assert rejection_status(caught.value) == 413


@given(st.binary(max_size=500), st.sampled_from(["gzip", "deflate"]))
def test_any_bytes_inflate_or_are_refused_with_a_status(data: bytes, coding: str) -> None:
    try:
        assert len(decoded_body(data, coding, 10_000)) <= 10_000
    except RequestRejected as error:
        assert rejection_status(error) in (400, 413)
