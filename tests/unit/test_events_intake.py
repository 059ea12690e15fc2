"""The intake behind POST /api/events: modes, limits, mixed batches and partition keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedded.eventlog.log import EventLog
from functions.events import rejection_status, result_status
from shared.events.errors import PublishFailed, RequestRejected
from shared.events.intake import BATCH, MAX_BODY_BYTES, SINGLE, EventIntake
from shared.events.protection import PROTECTED_PROPERTIES
from shared.events.publisher import (
    EVENTS_HUB,
    LocalEventPublisher,
    LocalEventsProbe,
)
from tests.eventdata import (
    encoded,
    event_intake,
    interaction,
    payment,
    protected_data,
    telemetry,
)
from tests.fakes.publisher import FakePublisher

pytestmark = pytest.mark.unit


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def intake(publisher: FakePublisher) -> EventIntake:
    return event_intake(publisher)


async def test_a_single_event_is_published(intake: EventIntake, publisher: FakePublisher) -> None:
    event = payment(3)
    result = await intake.submit(encoded(event), SINGLE)
    assert (result_status(result), result.to_json()) == (202, {"accepted": 1, "rejected": []})
    hub, [published] = publisher.published[0]
    assert hub == EVENTS_HUB and published.partition_key == "acct-3"
    assert published.properties == PROTECTED_PROPERTIES
    sent = json.loads(published.body)
    assert sent == {**event, "time": "2024-05-01T12:00:00Z", "data": protected_data(event)}


async def test_events_without_personal_data_are_published_as_they_were_decoded(
    intake: EventIntake, publisher: FakePublisher
) -> None:
    event = telemetry(1)
    duplicated = encoded(event).replace(b'"id":', b'"id":"4920777766665550","id":', 1)
    await intake.submit(duplicated, SINGLE)
    [published] = publisher.published[0][1]
    assert (published.partition_key, published.properties) == ("dev-1", PROTECTED_PROPERTIES)
    assert json.loads(published.body) == {**event, "time": "2024-05-01T12:00:00Z"}
    assert b"4920777766665550" not in published.body  # a key sent twice is not published


async def test_a_mixed_batch_accepts_the_valid_events(
    intake: EventIntake, publisher: FakePublisher
) -> None:
    good = [payment(1), {**telemetry(2), "subject": "line-7"}, interaction(3)]
    bad = payment(4, currency="ZZZ")
    body = json.dumps([good[0], bad, good[1], 17, good[2]]).encode()
    result = await intake.submit(body, BATCH)
    assert result_status(result) == 202
    answer = result.to_json()
    assert answer["accepted"] == 3
    assert [(r["index"], r["id"], r["reason"]) for r in answer["rejected"]] == [
        (1, bad["id"], "invalid_data"),
        (3, None, "not_an_event"),
    ]
    assert "currency" in answer["rejected"][0]["error"]
    published = publisher.published[0][1]
    assert [json.loads(e.body)["id"] for e in published] == [g["id"] for g in good]
    assert [e.partition_key for e in published] == ["acct-1", "line-7", "u-3"]


async def test_an_event_sent_twice_is_accepted_twice(
    intake: EventIntake, publisher: FakePublisher
) -> None:
    # At-least-once senders resend: the hub takes both copies, as Event Hubs does, and silver
    # keeps one per (source, id) (tests/unit/test_pipeline_silver_dedup.py).
    event, other = payment(5), payment(6)
    result = await intake.submit(json.dumps([event, other, event]).encode(), BATCH)
    assert result.to_json() == {"accepted": 3, "rejected": []}
    ids = [json.loads(e.body)["id"] for e in publisher.published[0][1]]
    assert ids == [event["id"], other["id"], event["id"]]


async def test_an_invalid_single_event_is_a_400_with_the_reason(
    intake: EventIntake, publisher: FakePublisher
) -> None:
    result = await intake.submit(encoded(payment(card_number="4111111111111112")), SINGLE)
    assert result_status(result) == 400
    assert "Luhn" in result.to_json()["error"]
    assert publisher.published == []


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", SINGLE, 400),
        (b"   ", BATCH, 400),
        (b"not json", SINGLE, 400),
        (b"\xff\xfe{}", SINGLE, 400),
        (b"[1,", BATCH, 400),
        (b"[\xff]", BATCH, 400),
        (b"[" * 100_000 + b"]" * 100_000, BATCH, 400),
        (b"17", SINGLE, 400),
        (b"[]", SINGLE, 400),
        (b"{}", BATCH, 400),
        (b"{}", "text/plain", 415),
        (b"{}", None, 415),
        (b"{}", SINGLE + "; charset=latin-1", 415),
        (b"[" + b" " * MAX_BODY_BYTES + b"]", BATCH, 413),
    ],
)
async def test_unusable_bodies(
    intake: EventIntake, body: bytes, content_type: str | None, status: int
) -> None:
    with pytest.raises(RequestRejected) as caught:
        await intake.submit(body, content_type)
    assert rejection_status(caught.value) == status
    assert caught.value.message


async def test_plain_json_and_charset_are_accepted(intake: EventIntake) -> None:
    assert (await intake.submit(encoded(payment()), "application/json")).accepted == 1
    batch = json.dumps([payment(), payment()]).encode()
    assert (await intake.submit(batch, "Application/JSON; charset=UTF-8")).accepted == 2


async def test_an_empty_batch_is_accepted_as_nothing(
    intake: EventIntake, publisher: FakePublisher
) -> None:
    assert (await intake.submit(b"[]", BATCH)).to_json() == {"accepted": 0, "rejected": []}
    assert publisher.published == []


async def test_a_failing_hub_accepts_nothing() -> None:
    intake = event_intake(FakePublisher(fail=True))
    with pytest.raises(PublishFailed):
        await intake.submit(encoded(payment()), SINGLE)


async def test_long_partition_keys_are_cut_to_the_event_hubs_limit(
    intake: EventIntake, publisher: FakePublisher
) -> None:
    await intake.submit(encoded({**payment(), "subject": "s" * 500}), SINGLE)
    assert publisher.published[0][1][0].partition_key == "s" * 128


async def test_the_local_publisher_makes_events_durable_in_the_log(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "local.sqlite3")
    intake = event_intake(LocalEventPublisher(lambda: log))
    bodies = [payment(n) for n in range(5)]
    await intake.submit(json.dumps(bodies).encode(), BATCH)
    with EventLog(tmp_path / "local.sqlite3") as reopened:  # as another process would
        stored = [
            e for p in range(reopened.ensure_hub(EVENTS_HUB)) for e in reopened.read("events", p)
        ]
    assert sorted(json.loads(e.body)["id"] for e in stored) == sorted(b["id"] for b in bodies)
    by_key = {e.partition_key: e.partition for e in stored}
    assert len(by_key) == len({b["data"]["account_id"] for b in bodies})
    log.close()


def test_the_events_probe_reports_the_local_log(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    broken = LocalEventPublisher.for_settings(blocker, {}, "EventHubConnection")
    assert not LocalEventsProbe(broken).check().ready
    working = LocalEventPublisher.for_settings(tmp_path / "data", {}, "EventHubConnection")
    readiness = LocalEventsProbe(working).check()
    assert readiness.ready and "4 partitions" in readiness.detail
    working.log.close()


async def test_an_unusable_log_is_a_publish_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    publisher = LocalEventPublisher.for_settings(blocker, {}, "EventHubConnection")
    with pytest.raises(PublishFailed):
        await event_intake(publisher).submit(encoded(payment()), SINGLE)


@pytest.mark.parametrize(
    "time", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z"]
)
async def test_an_event_time_outside_the_window_is_refused_out_of_range(
    intake: EventIntake, publisher: FakePublisher, time: str
) -> None:
    event = telemetry(1)
    event["time"] = time
    single = await intake.submit(encoded(event), SINGLE)
    assert result_status(single) == 400 and "window" in single.to_json()["error"]
    batch = await intake.submit(json.dumps([event, telemetry(2)]).encode(), BATCH)
    assert (result_status(batch), batch.accepted) == (202, 1)
    assert [r.reason for r in batch.rejected] == ["out_of_range"]
    assert len(publisher.published) == 1 and len(publisher.published[0][1]) == 1
