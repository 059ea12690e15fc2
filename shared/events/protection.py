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

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from shared.events.contracts import Contract
from shared.events.envelope import DecodedGroup, EventDecoder
from shared.events.errors import EventRejected, Reason
from shared.events.pseudonymize import Pseudonymizer
from shared.privacy.card_numbers import json_might_hold_card_number

PROTECTION_PROPERTY = "protection"
PSEUDONYMIZED = "pseudonymized"
PROTECTED_PROPERTIES: Mapping[str, str] = {PROTECTION_PROPERTY: PSEUDONYMIZED}
_ATTRIBUTES = ("id", "source", "time", "subject", "datacontenttype", "dataschema")
_encode = msgspec.json.Encoder().encode


def is_protected(properties: Mapping[str, Any] | None) -> bool:
    """Whether an event's application properties mark it as protected at intake."""
    return bool(properties) and properties.get(PROTECTION_PROPERTY) == PSEUDONYMIZED  # type: ignore[union-attr]


class EventProtector:
    """Turns valid posted events into protected ones."""

    def __init__(self, decoder: EventDecoder, pseudonymizer: Pseudonymizer) -> None:
        self._decoder = decoder
        self._pseudonymizer = pseudonymizer

    def partition_key(self, value: str) -> str:
        """A partition key without card numbers: the hub stores it beside the event."""
        return self._pseudonymizer.scrub_text(value)

    def protect(
        self, contract: Contract, group: DecodedGroup, bodies: Sequence[bytes]
    ) -> list[bytes | EventRejected]:
        """The protected body of each event of `group` (valid events of `contract`; `bodies`
        are the batch's, which `group.indexes` index), or why it cannot be published."""
        envelopes = group.envelopes
        pseudonyms = {
            name: self._pseudonymizer.pseudonyms([getattr(e.data, name) for e in envelopes])
            for name in contract.pii
        }
        protected: list[bytes | EventRejected] = []
        for at, envelope in enumerate(envelopes):
            extras = group.extras[at] if group.extras is not None else None
            extensions = group.extensions[at] if group.extensions is not None else None
            if not contract.pii and extras is None and extensions is None:
                body = bodies[group.indexes[at]]
                if not json_might_hold_card_number(body):
                    protected.append(body)  # nothing to change: published as posted
                    continue
            try:
                document = _document(contract, envelope, extras, extensions, pseudonyms, at)
            except EventRejected as error:
                protected.append(error)
                continue
            protected.append(self._scrubbed(contract, document))
        return protected

    def _scrubbed(self, contract: Contract, document: dict[str, Any]) -> bytes | EventRejected:
        body = _encode(document)
        if not json_might_hold_card_number(body):
            return body
        scrubbed = self._pseudonymizer.scrub(document)
        if scrubbed == document:
            return body
        try:  # a pseudonym is longer than the card number it replaces: the limits still hold?
            self._decoder.decode_document(scrubbed, protected=True)
        except EventRejected as error:
            return EventRejected(
                error.reason,
                f"{error.message} (once the card numbers in it are pseudonymized)",
                contract.event_type,
            )
        return _encode(scrubbed)


def _document(
    contract: Contract,
    envelope: Any,
    extras: dict[str, Any] | None,
    extensions: dict[str, Any] | None,
    pseudonyms: Mapping[str, list[str]],
    at: int,
) -> dict[str, Any]:
    data = msgspec.structs.asdict(envelope.data)
    for name, part in contract.pii.items():
        value = data[name]
        data[name] = pseudonyms[name][at]
        if part.kept_as is not None:
            data[part.kept_as] = value[-part.keep_last :] if value is not None else None
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
