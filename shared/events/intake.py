"""The intake service behind `POST /api/events`: CloudEvents in, valid events durably published.

Structured mode (`application/cloudevents+json`, one event) and batch mode
(`application/cloudevents-batch+json`, an array). Each event is validated on its own: the
valid ones are published (with `subject`, else the contract's entity key, as partition key)
and the others are reported back with their index, id and reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.events.envelope import DecodedEvent, EventDecoder
from shared.events.errors import EventRejected, Reason, RequestRejected
from shared.events.publisher import (
    EVENTS_HUB,
    MAX_PARTITION_KEY_CHARS,
    EventPublisher,
    OutgoingEvent,
)

MAX_BODY_BYTES = 1024 * 1024  # the Event Hubs batch limit
SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
PLAIN_JSON = "application/json"
_BODY_REASONS = (Reason.NOT_UTF8, Reason.MALFORMED_JSON, Reason.NOT_AN_EVENT)
_split_batch = msgspec.json.Decoder(list[msgspec.Raw])


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


def partition_key(event: DecodedEvent) -> str:
    """`subject` if the event has one, else the value of its contract's entity key."""
    envelope = event.envelope
    key = envelope.subject or getattr(envelope.data, event.contract.entity_key)
    return str(key)[:MAX_PARTITION_KEY_CHARS]


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
        outgoing: list[OutgoingEvent] = []
        rejected: list[RejectedEvent] = []
        decode = self._decoder.decode
        for index, item in enumerate(items):
            try:
                event = decode(item)
            except EventRejected as error:
                if not batch and error.reason in _BODY_REASONS:
                    raise RequestRejected(400, error.message) from None
                rejected.append(
                    RejectedEvent(index, _event_id(item), error.reason.value, error.message)
                )
                continue
            outgoing.append(OutgoingEvent(bytes(item), partition_key(event)))
        if outgoing:
            await self._publisher.publish(self._hub, outgoing)
        return IntakeResult(batch, len(outgoing), rejected)

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
            return True, [bytes(raw) for raw in _split_batch.decode(body)]
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
