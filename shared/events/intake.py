"""The intake service behind `POST /api/events`: CloudEvents in, valid events durably published.

Structured mode (`application/cloudevents+json`, one event) and batch mode
(`application/cloudevents-batch+json`, an array). Each event is validated on its own: the
valid ones are published (with `subject`, else the contract's entity key, as partition key)
and the others are reported back with their index, id and reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from shared.events.envelope import EventDecoder
from shared.events.errors import EventRejected, Reason, RequestRejected
from shared.events.publisher import (
    EVENTS_HUB,
    MAX_PARTITION_KEY_CHARS,
    EventPublisher,
    OutgoingEvent,
)
from shared.files.json_bytes import decode_json

MAX_BODY_BYTES = 1024 * 1024  # the Event Hubs batch limit
SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
PLAIN_JSON = "application/json"
_BODY_REASONS = (Reason.NOT_UTF8, Reason.MALFORMED_JSON, Reason.NOT_AN_EVENT)
_split_batch = msgspec.json.Decoder(list[msgspec.Raw])
_DATA = attrgetter("data")
_SUBJECT = attrgetter("subject")
_FIRST = itemgetter(0)


class _IdOnly(msgspec.Struct):
    id: Any = None


_read_id = msgspec.json.Decoder(_IdOnly)


@dataclass(frozen=True)
class RejectedEvent:
    index: int
    id: str | None
    reason: str
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "reason": self.reason, "error": self.error}


@dataclass(frozen=True)
class IntakeResult:
    """What happened to a request's events; `status` is 202, or 400 for a rejected single event."""

    batch: bool
    accepted: int
    rejected: list[RejectedEvent] = field(default_factory=list)

    @property
    def status(self) -> int:
        return 400 if not self.batch and self.rejected else 202

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "accepted": self.accepted,
            "rejected": [r.to_json() for r in self.rejected],
        }
        if self.status == 400:
            body["error"] = self.rejected[0].error
        return body


class EventIntake:
    """Validates posted events and publishes the valid ones to the events hub."""

    def __init__(
        self, decoder: EventDecoder, publisher: EventPublisher, hub: str = EVENTS_HUB
    ) -> None:
        self._decoder = decoder
        self._publisher = publisher
        self._hub = hub

    async def submit(self, body: bytes, content_type: str | None) -> IntakeResult:
        """Validate and publish; raises RequestRejected (400/413/415) for an unusable body and
        PublishFailed when the hub could not take the events (none may count as accepted)."""
        if len(body) > MAX_BODY_BYTES:
            raise RequestRejected(
                413, f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES} (1 MB)"
            )
        batch, items = self._split(body, content_type)
        keys, failed = self._validate(items)
        rejected: list[RejectedEvent] = []
        for index, error in sorted(failed, key=_FIRST):
            if not batch and error.reason in _BODY_REASONS:
                raise RequestRejected(400, error.message) from None
            item = items[index]
            rejected.append(
                RejectedEvent(index, _event_id(item), error.reason.value, error.message)
            )
        outgoing = [
            OutgoingEvent(bytes(item), key)
            for item, key in zip(items, keys, strict=True)
            if key is not None
        ]
        if outgoing:
            await self._publisher.publish(self._hub, outgoing)
        return IntakeResult(batch, len(outgoing), rejected)

    def _validate(
        self, items: Sequence[bytes]
    ) -> tuple[list[str | None], list[tuple[int, EventRejected]]]:
        """Each valid event's partition key (`subject`, else the contract's entity key; None
        for an invalid event), and the index and reason of each invalid one."""
        groups, failed = self._decoder.decode_batch(items)
        keys: list[str | None] = [None] * len(items)
        for contract, group in groups.items():
            datas = list(map(_DATA, group.envelopes))
            # The field checks run per column, over the whole request.
            failures = contract.violations(datas)
            for at, problem in failures.items():
                error = EventRejected(Reason.INVALID_DATA, problem, contract.event_type)
                failed.append((group.indexes[at], error))
            entities = map(attrgetter(contract.entity_key), datas)
            subjects = map(_SUBJECT, group.envelopes)
            for at, (index, subject, entity) in enumerate(
                zip(group.indexes, subjects, entities, strict=True)
            ):
                if at not in failures:
                    keys[index] = str(subject or entity)[:MAX_PARTITION_KEY_CHARS]
        return keys, failed

    def _split(self, body: bytes, content_type: str | None) -> tuple[bool, Sequence[Any]]:
        mode = _mode(content_type)
        stripped = body.lstrip(b" \t\r\n")
        if not stripped:
            raise RequestRejected(400, "the body is empty; send a CloudEvent or an array of them")
        is_array = stripped[:1] == b"["
        if mode == SINGLE and is_array:
            raise RequestRejected(400, f"an array of events must be sent as {BATCH}")
        if mode == BATCH and not is_array:
            raise RequestRejected(400, f"{BATCH} takes a JSON array of events")
        if not is_array:
            return False, [body]
        try:
            return True, [bytes(raw) for raw in decode_json(body, _split_batch)]
        except UnicodeDecodeError:
            raise RequestRejected(400, "the body is not valid UTF-8") from None
        except (msgspec.DecodeError, RecursionError) as error:
            raise RequestRejected(400, f"the body is not a JSON array of events: {error}") from None


def _mode(content_type: str | None) -> str:
    media, _, parameters = (content_type or "").partition(";")
    media = media.strip().lower()
    if media not in (SINGLE, BATCH, PLAIN_JSON):
        raise RequestRejected(
            415, f"Content-Type must be {SINGLE} (one event) or {BATCH} (an array of events)"
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise RequestRejected(415, "events must be encoded as UTF-8")
    return media


def _event_id(item: bytes) -> str | None:
    try:
        value = _read_id.decode(item).id
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return value[:256] if isinstance(value, str) else None
