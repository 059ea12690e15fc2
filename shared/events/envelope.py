"""Decode CloudEvents 1.0 structured JSON into typed contract data, in one pass when possible.

The fast path is a single msgspec decode against a tagged union of envelopes (tag: `type`),
one per contract, that forbids unknown fields. Anything it refuses (unknown fields, extension
attributes, an older contract version, or an error) takes the slow path, which decodes
generically to keep extras and extensions, or to explain precisely why the event is rejected.

A protected event (pseudonymized at intake, `shared.events.protection`) is decoded against the
contract's protected data: its PII fields are pseudonyms, followed by the parts it keeps.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from shared.events.contracts import Contract, ContractRegistry
from shared.events.errors import EventRejected, Reason
from shared.events.representable import EventTimeWindow
from shared.files.json_bytes import decode_any_json

SPEC_VERSION = "1.0"
JSON_CONTENT_TYPES = ("application/json", "application/json; charset=utf-8")
STANDARD_ATTRIBUTES = frozenset(
    ("specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema")
)
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
_TIME = attrgetter("time")

EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
UriRef = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


class DecodedEvent(NamedTuple):
    """A valid event: its contract, its typed envelope (`.id`, `.source`, `.time`, `.subject`,
    `.data`), the unknown data fields and extension attributes, if any (raw, not yet
    pseudonymized), and whether it is a protected event."""

    contract: Contract
    envelope: Any
    extras: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None
    protected: bool = False


@dataclass
class DecodedGroup:
    """The valid events of one contract in a batch, in batch order: their typed envelopes,
    their indexes in the batch, their extras and extensions (None when no event has any), and
    which are protected events (None when none is)."""

    envelopes: list[Any]
    indexes: list[int]
    extras: list[dict[str, Any] | None] | None = None
    extensions: list[dict[str, Any] | None] | None = None
    protected: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.envelopes)

    def add(self, index: int, event: DecodedEvent) -> None:
        """Append one event (decoded on the slow path, so it may have extras)."""
        if event.extras is not None and self.extras is None:
            self.extras = [None] * len(self.envelopes)
        if event.extensions is not None and self.extensions is None:
            self.extensions = [None] * len(self.envelopes)
        if event.protected and self.protected is None:
            self.protected = [False] * len(self.envelopes)
        self.envelopes.append(event.envelope)
        self.indexes.append(index)
        if self.extras is not None:
            self.extras.append(event.extras)
        if self.extensions is not None:
            self.extensions.append(event.extensions)
        if self.protected is not None:
            self.protected.append(event.protected)

    def merge(self, other: DecodedGroup) -> None:
        """Append the events of `other` (of the same contract); `reorder` puts them in place."""
        count = len(self.envelopes)
        for name in ("extras", "extensions", "protected"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None and theirs is None:
                continue
            empty: Any = False if name == "protected" else None
            mine = mine if mine is not None else [empty] * count
            theirs = theirs if theirs is not None else [empty] * len(other)
            setattr(self, name, mine + theirs)
        self.envelopes = self.envelopes + other.envelopes
        self.indexes = self.indexes + other.indexes

    def select(self, positions: Sequence[int]) -> DecodedGroup:
        """The events at these positions of the group."""
        return DecodedGroup(
            [self.envelopes[i] for i in positions],
            [self.indexes[i] for i in positions],
            None if self.extras is None else [self.extras[i] for i in positions],
            None if self.extensions is None else [self.extensions[i] for i in positions],
            None if self.protected is None else [self.protected[i] for i in positions],
        )

    def reorder(self) -> None:
        """Put events added out of order back in batch order."""
        indexes = self.indexes
        if all(a < b for a, b in zip(indexes, indexes[1:], strict=False)):
            return
        ordered = self.select(sorted(range(len(indexes)), key=indexes.__getitem__))
        self.envelopes, self.indexes = ordered.envelopes, ordered.indexes
        self.extras, self.extensions = ordered.extras, ordered.extensions
        self.protected = ordered.protected


def envelope_type(contract: Contract, *, protected: bool = False) -> type[msgspec.Struct]:
    """The typed CloudEvents envelope of one contract (of its protected events if
    `protected`), tagged by its `type`."""
    data = contract.protected_data if protected else contract.data
    return msgspec.defstruct(
        f"{data.__name__}EventV{contract.version}",
        [
            ("specversion", Literal["1.0"]),
            ("id", EventId),
            ("source", UriRef),
            ("data", data),
            ("time", Timestamp | None, None),
            ("subject", UriRef | None, None),
            ("datacontenttype", Literal[JSON_CONTENT_TYPES] | None, None),
            ("dataschema", UriRef | None, None),
        ],
        tag_field="type",
        tag=contract.event_type,
        forbid_unknown_fields=True,
        omit_defaults=True,  # an envelope encoded again (intake's protection) has no nulls
        frozen=True,
        gc=False,  # holds scalars and the data Struct only: no cycles to collect
    )


class EventDecoder:
    """Decodes one event's JSON bytes against the registry's contracts."""

    def __init__(
        self,
        registry: ContractRegistry | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        """`clock` places the window of accepted event times (`EventTimeWindow`)."""
        self.registry = registry or ContractRegistry()
        self._clock = clock
        self._envelopes = {c: envelope_type(c) for c in self.registry.all()}
        protected = {
            c: envelope_type(c, protected=True) if c.pii else self._envelopes[c]
            for c in self.registry.all()
        }
        self._decoders: dict[tuple[Contract, bool], msgspec.json.Decoder[Any]] = {}
        for c in self.registry.all():
            self._decoders[c, False] = msgspec.json.Decoder(self._envelopes[c])
            self._decoders[c, True] = msgspec.json.Decoder(protected[c])
        latest = self.registry.latest()
        self._contract_of = {self._envelopes[c]: c for c in latest}
        self._contract_of.update({protected[c]: c for c in latest})
        self._fast = _union_decoder(tuple(self._envelopes[c] for c in latest))
        self._fast_protected = _union_decoder(tuple(protected[c] for c in latest))

    def decode(self, body: bytes | memoryview, *, check: bool = True) -> DecodedEvent:
        """Decode and validate one event; raises EventRejected with the reason.

        With `check=False` the contract's field checks (`Contract.violations`) are left to
        the caller, who can run them over a whole batch at once.
        """
        try:
            envelope = self._fast.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return self._decode_slow(body)
        contract = self._contract_of[type(envelope)]
        if envelope.dataschema is not None and envelope.dataschema != contract.dataschema:
            return self._decode_slow(body)
        _check_time(envelope, contract, EventTimeWindow(self._clock()))
        if not check:
            return DecodedEvent(contract, envelope)
        problem = contract.violation(envelope.data)
        if problem is not None:
            raise EventRejected(Reason.INVALID_DATA, problem, contract.event_type)
        return DecodedEvent(contract, envelope)

    def decode_batch(
        self, bodies: Sequence[bytes | memoryview], protected: Sequence[bool] | None = None
    ) -> tuple[dict[Contract, DecodedGroup], list[tuple[int, EventRejected]]]:
        """Decode many events without their contracts' field checks (`Contract.violations`
        runs them per column): the valid ones grouped by contract, in order, and the index
        and reason of each rejected one. `protected` says which bodies are protected events
        (None: none is)."""
        contract_of = self._contract_of
        plain, shielded = self._fast.decode, self._fast_protected.decode
        window = EventTimeWindow(self._clock())
        by_type: dict[type, tuple[list[Any], list[int]]] = {}
        slow: list[int] = []
        rejected: list[tuple[int, EventRejected]] = []
        for index, body in enumerate(bodies):
            fast = shielded if protected is not None and protected[index] else plain
            try:
                envelope = fast(body)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                slow.append(index)
                continue
            kind = type(envelope)
            if envelope.dataschema is not None:
                if envelope.dataschema != contract_of[kind].dataschema:
                    slow.append(index)
                    continue
            group = by_type.get(kind)
            if group is None:
                group = by_type[kind] = ([], [])
            group[0].append(envelope)
            group[1].append(index)
        groups: dict[Contract, DecodedGroup] = {}
        mixed = False
        for kind, (envelopes, indexes) in by_type.items():
            late = window.outside(list(map(_TIME, envelopes)))
            if late:  # rejected on the slow path, with the reason
                slow.extend(indexes[i] for i in late)
                keep = sorted(set(range(len(envelopes))).difference(late))
                envelopes = [envelopes[i] for i in keep]
                indexes = [indexes[i] for i in keep]
            if not envelopes:
                continue
            contract = contract_of[kind]
            # The kinds of a contract without PII are one for raw and protected events alike:
            # they are decoded the same way, and nothing tells them apart afterwards.
            shield = bool(contract.pii) and protected is not None and protected[indexes[0]]
            decoded = DecodedGroup(
                envelopes, indexes, protected=[True] * len(envelopes) if shield else None
            )
            if contract in groups:
                groups[contract].merge(decoded)
                mixed = True
            else:
                groups[contract] = decoded
        for index in slow:
            try:
                shield = protected is not None and protected[index]
                event = self._decode_slow(bodies[index], window, protected=shield)
            except EventRejected as error:
                rejected.append((index, error))
                continue
            found = groups.get(event.contract)
            if found is None:
                found = groups[event.contract] = DecodedGroup([], [])
            found.add(index, event)
        if slow or mixed:
            for decoded in groups.values():
                decoded.reorder()
        return groups, rejected

    def decode_document(
        self, document: Any, window: EventTimeWindow | None = None, *, protected: bool = False
    ) -> DecodedEvent:
        """Validate an already parsed JSON value as one event (a protected one if
        `protected`); raises EventRejected."""
        if not isinstance(document, dict):
            raise EventRejected(Reason.NOT_AN_EVENT, "an event must be a JSON object")
        contract = self._contract(document)
        data = document.get("data")
        if "data_base64" in document:
            raise EventRejected(
                Reason.INVALID_ENVELOPE,
                "data_base64 is not accepted: send JSON data",
                contract.event_type,
            )
        if not isinstance(data, dict):
            raise EventRejected(
                Reason.INVALID_DATA, "data must be a JSON object", contract.event_type
            )
        fields = (contract.protected_data if protected else contract.data).__struct_fields__
        known = {name: value for name, value in data.items() if name in fields}
        extras = {name: value for name, value in data.items() if name not in fields}
        extensions = _extensions(document, contract)
        cleaned = {k: v for k, v in document.items() if k in STANDARD_ATTRIBUTES}
        cleaned["data"] = known
        try:
            decoder = self._decoders[contract, protected]
            envelope: Any = decoder.decode(msgspec.json.encode(cleaned))
        except msgspec.ValidationError as error:
            message = str(error)
            in_data = re.search(r"`\$\.data(`|\.|\[)", message) is not None
            reason = Reason.INVALID_DATA if in_data else Reason.INVALID_ENVELOPE
            raise EventRejected(reason, message, contract.event_type) from None
        _check_time(envelope, contract, window or EventTimeWindow(self._clock()))
        problem = contract.violation(envelope.data, protected=protected)
        if problem is not None:
            raise EventRejected(Reason.INVALID_DATA, problem, contract.event_type)
        return DecodedEvent(contract, envelope, extras or None, extensions or None, protected)

    def _decode_slow(
        self,
        body: bytes | memoryview,
        window: EventTimeWindow | None = None,
        *,
        protected: bool = False,
    ) -> DecodedEvent:
        return self.decode_document(parse_json(body), window, protected=protected)

    def _contract(self, document: dict[str, Any]) -> Contract:
        if document.get("specversion") != SPEC_VERSION:
            raise EventRejected(Reason.INVALID_ENVELOPE, 'specversion must be "1.0"')
        event_type = document.get("type")
        if not isinstance(event_type, str) or not event_type:
            raise EventRejected(Reason.INVALID_ENVELOPE, "type must be a non-empty string")
        dataschema = document.get("dataschema")
        if dataschema is None:
            contract = self.registry.get(event_type)
        elif isinstance(dataschema, str):
            contract = self.registry.by_dataschema(dataschema)
            if contract is not None and contract.event_type != event_type:
                contract = None
            if contract is None and self.registry.get(event_type) is not None:
                raise EventRejected(
                    Reason.UNKNOWN_VERSION,
                    f"dataschema names no known version of {event_type}; "
                    f"expected urn:contract:{event_type}:<version>",
                    event_type,
                )
        else:
            raise EventRejected(Reason.INVALID_ENVELOPE, "dataschema must be a string")
        if contract is None:
            known = ", ".join(self.registry.types)
            raise EventRejected(Reason.UNKNOWN_TYPE, f"unknown event type; known types: {known}")
        return contract


def parse_json(body: bytes | memoryview) -> Any:
    """Parse JSON bytes into Python values; raises EventRejected if not UTF-8 JSON."""
    try:
        return decode_any_json(body)
    except UnicodeDecodeError:
        raise EventRejected(Reason.NOT_UTF8, "the event is not valid UTF-8") from None
    except msgspec.DecodeError as error:
        raise EventRejected(
            Reason.MALFORMED_JSON, f"the event is not valid JSON: {error}"
        ) from None
    except RecursionError:
        raise EventRejected(Reason.MALFORMED_JSON, "the event is nested too deeply") from None


def _check_time(envelope: Any, contract: Contract, window: EventTimeWindow) -> None:
    problem = window.problem(envelope.time)
    if problem is not None:
        raise EventRejected(Reason.OUT_OF_RANGE, problem, contract.event_type)


def _extensions(document: dict[str, Any], contract: Contract) -> dict[str, Any]:
    extensions: dict[str, Any] = {}
    for name, value in document.items():
        if name in STANDARD_ATTRIBUTES or name in ("data", "data_base64"):
            continue
        if not _EXTENSION_NAME.fullmatch(name):
            raise EventRejected(
                Reason.INVALID_ENVELOPE,
                "extension attribute names are 1 to 20 lower-case letters or digits",
                contract.event_type,
            )
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise EventRejected(
                Reason.INVALID_ENVELOPE,
                f"extension attribute {name} must be a string, number or boolean",
                contract.event_type,
            )
        extensions[name] = value
    return extensions


def _union_decoder(members: tuple[type[msgspec.Struct], ...]) -> msgspec.json.Decoder[Any]:
    from functools import reduce
    from operator import or_

    return msgspec.json.Decoder(members[0] if len(members) == 1 else reduce(or_, members))
