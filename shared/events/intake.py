"""The intake service behind `POST /api/events`: CloudEvents in, valid events durably published.

Structured mode (`application/cloudevents+json`, one event), batch mode
(`application/cloudevents-batch+json`, an array), binary mode (`ce-*` headers, the data as an
`application/json` body), and plain `application/json` (one event or an array, as structured).
Each event is validated on its own: the valid ones are protected (pseudonymized,
`shared.events.protection`) and published (with `subject`, else the contract's entity key, as
partition key), and the others are reported back with their index, id and reason. The parsing,
checks and protection run off the event loop, on a thread of the intake's own: a request at the
limits takes up to ~150 ms of CPU, which must not stall the other requests.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from shared.events.binary_mode import is_binary_mode, structured_event
from shared.events.envelope import EventDecoder
from shared.events.errors import (
    EventRejected,
    MalformedRequest,
    Reason,
    RequestTooLarge,
    UnsupportedContent,
)
from shared.events.protection import PROTECTED_PROPERTIES, EventProtector
from shared.events.publisher import (
    EVENTS_HUB,
    MAX_PARTITION_KEY_CHARS,
    EventPublisher,
    OutgoingEvent,
)
from shared.events.request_body import decoded_body
from shared.files.json_bytes import decode_json

MAX_BODY_BYTES = 1024 * 1024  # the Event Hubs batch limit, after any Content-Encoding
# 1 MB holds ~5,000 of the smallest valid events (~200 bytes each), but ~350,000 empty objects
# (9 s of work, a 35 MB answer). At 5,000, the costliest request measured (every event with
# invalid data) takes ~150 ms, and a valid one ~9 ms.
MAX_EVENTS_PER_REQUEST = 5_000
MAX_REJECTIONS_LISTED = 100  # past it, the answer counts the rest by reason
CHECKING_THREADS = 1  # the checks hold the GIL: more threads would only contend for it
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
    """What happened to a request's events; `refused` when it was a single event, rejected."""

    batch: bool
    accepted: int
    rejected: list[RejectedEvent] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return not self.batch and bool(self.rejected)

    def to_json(self) -> dict[str, Any]:
        """`rejected` lists the first MAX_REJECTIONS_LISTED rejections; past them, the answer
        adds `rejected_total` and `rejected_by_reason` (a count per reason, for all)."""
        listed = self.rejected[:MAX_REJECTIONS_LISTED]
        body: dict[str, Any] = {
            "accepted": self.accepted,
            "rejected": [r.to_json() for r in listed],
        }
        if len(listed) < len(self.rejected):
            body["rejected_total"] = len(self.rejected)
            body["rejected_by_reason"] = dict(Counter(r.reason for r in self.rejected))
        if self.refused:
            body["error"] = self.rejected[0].error
        return body


class EventIntake:
    """Validates posted events and publishes the valid ones to the events hub."""

    def __init__(
        self,
        decoder: EventDecoder,
        publisher: EventPublisher,
        protector: EventProtector,
        hub: str = EVENTS_HUB,
    ) -> None:
        self._decoder = decoder
        self._publisher = publisher
        self._protector = protector
        self._hub = hub
        # Its own threads: queued behind the default executor, the checks would delay every
        # other `asyncio.to_thread` caller (the health probes among them).
        self._checking = ThreadPoolExecutor(CHECKING_THREADS, thread_name_prefix="intake")

    async def submit(
        self, body: bytes, content_type: str | None, headers: Mapping[str, str] | None = None
    ) -> IntakeResult:
        """Validate and publish; raises a RequestRejected (MalformedRequest, RequestTooLarge,
        UnsupportedContent) for an unusable body and PublishFailed when the hub could not take
        the events (none may count as accepted).

        `headers` are the request's (for `Content-Encoding` and binary mode's `ce-*`)."""
        batch, items, keys, rejected = await asyncio.get_running_loop().run_in_executor(
            self._checking, self._check, body, content_type, _lower_names(headers or {})
        )
        outgoing = [
            OutgoingEvent(item, key, PROTECTED_PROPERTIES)
            for item, key in zip(items, keys, strict=True)
            if item is not None and key is not None
        ]
        if outgoing:
            await self._publisher.publish(self._hub, outgoing)
        return IntakeResult(batch, len(outgoing), rejected)

    def _check(
        self, body: bytes, content_type: str | None, headers: Mapping[str, str]
    ) -> tuple[bool, Sequence[bytes | None], list[str | None], list[RejectedEvent]]:
        """Parse, validate and protect (in a worker thread): whether it is a batch, each
        event's protected body and partition key (None if rejected), and the rejections in
        batch order."""
        body = decoded_body(body, headers.get("content-encoding"), MAX_BODY_BYTES)
        batch, items = self._split(body, content_type, headers)
        protected, keys, failed = self._validate(items)
        rejected: list[RejectedEvent] = []
        for index, error in sorted(failed, key=_FIRST):
            if not batch and error.reason in _BODY_REASONS:
                raise MalformedRequest(error.message) from None
            item = items[index]
            rejected.append(
                RejectedEvent(index, _event_id(item), error.reason.value, error.message)
            )
        return batch, protected, keys, rejected

    def _validate(
        self, items: Sequence[bytes]
    ) -> tuple[list[bytes | None], list[str | None], list[tuple[int, EventRejected]]]:
        """Each valid event's protected body and partition key (`subject`, else the
        contract's entity key; None for an invalid event), and the index and reason of each
        invalid one."""
        groups, failed = self._decoder.decode_batch(items)
        bodies: list[bytes | None] = [None] * len(items)
        keys: list[str | None] = [None] * len(items)
        for contract, group in groups.items():
            # The field checks run per column, over the whole request.
            failures = contract.violations(list(map(_DATA, group.envelopes)))
            for at, problem in failures.items():
                error = EventRejected(Reason.INVALID_DATA, problem, contract.event_type)
                failed.append((group.indexes[at], error))
            if failures:
                group = group.select([at for at in range(len(group)) if at not in failures])
            for index, event in zip(
                group.indexes, self._protector.protect(contract, group), strict=True
            ):
                if isinstance(event, EventRejected):
                    failed.append((index, event))
                    continue
                bodies[index] = event.body
                keys[index] = event.partition_key[:MAX_PARTITION_KEY_CHARS]
        return bodies, keys, failed

    def _split(
        self, body: bytes, content_type: str | None, headers: Mapping[str, str]
    ) -> tuple[bool, Sequence[bytes]]:
        mode = _mode(content_type)
        if mode not in (SINGLE, BATCH) and is_binary_mode(headers):
            return False, [structured_event(headers, mode, body)]
        if mode not in (SINGLE, BATCH, PLAIN_JSON):
            raise UnsupportedContent(
                f"Content-Type must be {SINGLE} (one event), {BATCH} (an array of events) or "
                f"{PLAIN_JSON} (either), or binary mode (ce-* headers, JSON data)",
            )
        stripped = body.lstrip(b" \t\r\n")
        if not stripped:
            raise MalformedRequest("the body is empty; send a CloudEvent or an array of them")
        is_array = stripped[:1] == b"["
        if mode == SINGLE and is_array:
            raise MalformedRequest(f"an array of events must be sent as {BATCH}")
        if mode == BATCH and not is_array:
            raise MalformedRequest(f"{BATCH} takes a JSON array of events")
        if not is_array:
            return False, [body]
        try:
            raws = decode_json(body, _split_batch)
        except UnicodeDecodeError:
            raise MalformedRequest("the body is not valid UTF-8") from None
        except (msgspec.DecodeError, RecursionError) as error:
            raise MalformedRequest(f"the body is not a JSON array of events: {error}") from None
        if len(raws) > MAX_EVENTS_PER_REQUEST:
            raise RequestTooLarge(
                f"the batch has {len(raws)} events; the limit is {MAX_EVENTS_PER_REQUEST} "
                "per request",
            )
        return True, [bytes(raw) for raw in raws]


def _lower_names(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _mode(content_type: str | None) -> str:
    """The media type, lower-cased; raises UnsupportedContent for a charset but UTF-8."""
    media, _, parameters = (content_type or "").partition(";")
    media = media.strip().lower()
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedContent("events must be encoded as UTF-8")
    return media


def _event_id(item: bytes) -> str | None:
    try:
        value = _read_id.decode(item).id
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return value[:256] if isinstance(value, str) else None
