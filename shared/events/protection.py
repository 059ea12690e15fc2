"""Protection at intake: events are pseudonymized before they are published, so that the hub (the
local event log, Event Hubs in Azure) never holds a raw card number for its retention.

A protected event is the posted event with each PII field replaced by its pseudonym and
followed by the part the contract keeps (`card_number` → its HMAC, `card_last4`), and with
every card number elsewhere (id, source, subject, free-text fields, extras, extensions)
replaced by `pseudonym:<hex>`. It is published with the application property
`protection: pseudonymized`, so that ingest decodes it against the contract's protected data
and does not hash its pseudonyms again. An event published straight to the hub without the
property (a device) is raw, and ingest protects it. The property cannot smuggle a raw card
number past ingest: a protected PII field must be 64 hex characters, and ingest scrubs every
other string again (scrubbing twice changes nothing).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec
import pyarrow as pa

from shared.events.contracts import Contract
from shared.events.envelope import DecodedGroup, EventDecoder
from shared.events.errors import EventRejected, Reason
from shared.events.pseudonymize import Pseudonymizer
from shared.privacy.card_numbers import candidates, card_number_spans

PROTECTION_PROPERTY = "protection"
PSEUDONYMIZED = "pseudonymized"
PROTECTED_PROPERTIES: Mapping[str, str] = {PROTECTION_PROPERTY: PSEUDONYMIZED}
_ATTRIBUTES = ("id", "source", "time", "subject", "datacontenttype", "dataschema")
_SCREENED: tuple[tuple[str, ...], ...] = (("id",), ("source",), ("subject",))
_encode = msgspec.json.Encoder().encode
_replace = msgspec.structs.replace


def is_protected(properties: Mapping[str, Any] | None) -> bool:
    """Whether an event's application properties mark it as protected at intake."""
    if not properties:
        return False
    return properties.get(PROTECTION_PROPERTY) == PSEUDONYMIZED


class ProtectedEvent(NamedTuple):
    """A protected event to publish: its body and its partition key, both without card numbers
    (the hub stores the key beside the event)."""

    body: bytes
    partition_key: str


class EventProtector:
    """Turns valid posted events into protected ones."""

    def __init__(self, decoder: EventDecoder, pseudonymizer: Pseudonymizer) -> None:
        self._decoder = decoder
        self._pseudonymizer = pseudonymizer

    def protect(
        self, contract: Contract, group: DecodedGroup
    ) -> list[ProtectedEvent | EventRejected]:
        """Each event of `group` (valid events of `contract`) protected, with its partition
        key (`subject`, else the contract's entity key), or why it cannot be published."""
        envelopes = group.envelopes
        datas = [e.data for e in envelopes]
        flagged = self._flagged(contract, envelopes, datas)
        pseudonyms = {
            name: self._pseudonymizer.pseudonyms([getattr(d, name) for d in datas])
            for name in contract.pii
        }
        special = set(flagged)
        for unknown in (group.extras, group.extensions):
            if unknown is not None:
                special.update(at for at, value in enumerate(unknown) if value is not None)
        entity = attrgetter(contract.entity_key)
        protected: list[ProtectedEvent | EventRejected] = []
        for at, envelope in enumerate(envelopes):
            if at not in special:
                # Encoded from what was decoded, never the posted bytes: a duplicated key or
                # an escape there could hide what the typed values do not show.
                if contract.pii:
                    data = _protected_data(contract, envelope.data, pseudonyms, at)
                    envelope = _replace(envelope, data=data)
                key = envelope.subject or entity(envelope.data)
                protected.append(ProtectedEvent(_encode(envelope), key))
                continue
            extras = group.extras[at] if group.extras is not None else None
            extensions = group.extensions[at] if group.extensions is not None else None
            try:
                document = _document(contract, envelope, extras, extensions, pseudonyms, at)
            except EventRejected as error:
                protected.append(error)
                continue
            if extras is not None or extensions is not None:  # anything may be anywhere
                document = self._pseudonymizer.scrub(document)
            else:
                document = self._scrub_at(document, flagged[at])
            protected.append(self._checked(contract, document))
        return protected

    def _flagged(
        self, contract: Contract, envelopes: list[Any], datas: list[Any]
    ) -> dict[int, list[tuple[str, ...]]]:
        """The events whose attributes or text fields may hold a card number, with where."""
        texts = [
            pa.array([e.id for e in envelopes], pa.string()),
            pa.array([e.source for e in envelopes], pa.string()),
            pa.array([e.subject for e in envelopes], pa.string()),
            *(pa.array([getattr(d, f) for d in datas], pa.string()) for f in contract.text_fields),
        ]
        places = [*_SCREENED, *(("data", f) for f in contract.text_fields)]
        flagged: dict[int, list[tuple[str, ...]]] = {}
        for place, text, column in zip(places, texts, candidates(texts), strict=True):
            for at in column:  # the screen's candidates, confirmed (UUIDs are not cards)
                value = text[at].as_py()
                if value is not None and card_number_spans(value):
                    flagged.setdefault(at, []).append(place)
        return flagged

    def _scrub_at(self, document: dict[str, Any], places: list[tuple[str, ...]]) -> dict[str, Any]:
        for place in places:
            holder = document
            for key in place[:-1]:
                holder = holder[key]
            value = holder.get(place[-1])
            if isinstance(value, str):
                holder[place[-1]] = self._pseudonymizer.scrub_text(value)
        return document

    def _checked(
        self, contract: Contract, document: dict[str, Any]
    ) -> ProtectedEvent | EventRejected:
        """A scrubbed document published, or why it breaks its contract now."""
        try:  # a pseudonym is longer than the card number it replaces: the limits still hold?
            self._decoder.decode_document(document, protected=True)
        except EventRejected as error:
            return EventRejected(
                error.reason,
                f"{error.message} (once the card numbers in it are pseudonymized)",
                contract.event_type,
            )
        key = document.get("subject") or document["data"][contract.entity_key]
        return ProtectedEvent(_encode(document), str(key))


def _protected_data(
    contract: Contract, data: Any, pseudonyms: Mapping[str, list[str]], at: int
) -> Any:
    """The protected data of one event: positional, as the protected Struct orders its fields
    (each PII field followed by the part kept), which is twice as fast as by keyword."""
    if not contract.pii:
        return data
    values = list(msgspec.structs.astuple(data))
    for position, name, keep_last in _pii_positions(contract):  # from the last one back
        value = values[position]
        values[position] = pseudonyms[name][at]
        if keep_last is not None:
            values.insert(position + 1, value[-keep_last:] if value is not None else None)
    return contract.protected_data(*values)


@functools.cache
def _pii_positions(contract: Contract) -> tuple[tuple[int, str, int | None], ...]:
    names = contract.field_names
    found = [
        (names.index(name), name, part.keep_last if part.kept_as is not None else None)
        for name, part in contract.pii.items()
    ]
    return tuple(sorted(found, reverse=True))


def _document(
    contract: Contract,
    envelope: Any,
    extras: dict[str, Any] | None,
    extensions: dict[str, Any] | None,
    pseudonyms: Mapping[str, list[str]],
    at: int,
) -> dict[str, Any]:
    protected = _protected_data(contract, envelope.data, pseudonyms, at)
    data = msgspec.structs.asdict(protected)
    if extras:
        taken = sorted(extras.keys() & data.keys())
        if taken:
            raise EventRejected(
                Reason.INVALID_DATA,
                f"data.{taken[0]} is reserved: the platform derives it from the PII it protects",
                contract.event_type,
            )
        data.update(extras)
    document: dict[str, Any] = {"specversion": "1.0", "type": contract.event_type}
    for name in _ATTRIBUTES:
        value = getattr(envelope, name)
        if value is not None:
            document[name] = value
    if extensions:
        document.update(extensions)
    document["data"] = data
    return document
