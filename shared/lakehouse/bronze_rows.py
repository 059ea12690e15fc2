"""Build bronze batches as Arrow columns directly: one list per column, never a dict per row.

Rows of valid events go to their contract's table with PII fields pseudonymized (a protected
event's are pseudonyms already) and card numbers scrubbed from every other string: the envelope
attributes, the free text fields, extras and extensions. Rejected events become dead-letter
rows whose payload is pseudonymized wherever a card number could be.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, NamedTuple, Protocol

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from shared.events.contracts import Contract, ContractRegistry, Pii
from shared.events.envelope import DecodedEvent
from shared.events.errors import EventRejected
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.bronze_schema import (
    DEADLETTER_SCHEMA,
    NOT_SCORED,
    SCORING,
    TIMESTAMP,
    bronze_schema,
)

_ENVELOPE = attrgetter("envelope")
_DATA = attrgetter("data")
_ID = attrgetter("id")
_SOURCE = attrgetter("source")
_SUBJECT = attrgetter("subject")
_TIME = attrgetter("time")
_EXTRAS = attrgetter("extras")
_EXTENSIONS = attrgetter("extensions")
_PROTECTED = attrgetter("protected")
_TZINFO = attrgetter("tzinfo")
_MINUTE = dt.timedelta(minutes=1)
_MAX_ATTRIBUTE_CHARS = 256
_PSEUDONYM = re.compile(r"[0-9a-f]{64}\Z")


class HubMessage(Protocol):
    """An event as the Event Hubs trigger delivers it (`func.EventHubEvent` fits)."""

    def get_body(self) -> bytes: ...

    @property
    def sequence_number(self) -> int | None: ...

    @property
    def enqueued_time(self) -> dt.datetime | None: ...

    @property
    def offset(self) -> Any: ...


class Position(NamedTuple):
    """Where a batch was read: the namespace, hub, consumer group and partition."""

    namespace: str
    hub: str
    consumer_group: str
    partition: int


class Rejection(NamedTuple):
    """An event that failed decoding or its contract, with where it was read."""

    error: EventRejected
    body: bytes
    sequence_number: int
    offset: int | None
    enqueued_time: dt.datetime
    protected: bool = False  # a protected event: its PII fields hold pseudonyms already


class ContractRows:
    """Builds one contract's bronze batches."""

    def __init__(self, contract: Contract, pseudonymizer: Pseudonymizer) -> None:
        self.contract = contract
        self.schema = bronze_schema(contract)
        self._scored = contract.scored_by is not None
        self._pseudonymizer = pseudonymizer
        data_names = {f.name for f in self.schema} & set(contract.field_names)
        self._fields = [
            (name, attrgetter(name), self.schema.field(name).type, contract.pii.get(name))
            for name in contract.field_names
            if name in data_names
        ]
        self._text_fields = [name for name in contract.text_fields if name in data_names]
        self._text_getters = [attrgetter(name) for name in self._text_fields]
        self._event_type = pa.scalar(contract.event_type, pa.string())
        self._version = pa.scalar(contract.version, pa.int32())

    def table(
        self,
        events: Sequence[DecodedEvent],
        sequence_numbers: Sequence[int],
        enqueued_times: Sequence[dt.datetime],
        partition: int,
        ingested_at: dt.datetime,
    ) -> pa.Table:
        """The rows of `events` (all of this contract), in order."""
        extras = list(map(_EXTRAS, events))
        extensions = list(map(_EXTENSIONS, events))
        protected = list(map(_PROTECTED, events))
        return self.build(
            list(map(_ENVELOPE, events)),
            sequence_numbers,
            enqueued_times,
            partition,
            ingested_at,
            extras=extras if any(extras) else None,
            extensions=extensions if any(extensions) else None,
            protected=protected if True in protected else None,
        )

    def build(
        self,
        envelopes: Sequence[Any],
        sequence_numbers: Sequence[int],
        enqueued_times: Sequence[dt.datetime],
        partition: int,
        ingested_at: dt.datetime,
        *,
        extras: Sequence[dict[str, Any] | None] | None = None,
        extensions: Sequence[dict[str, Any] | None] | None = None,
        protected: Sequence[bool] | None = None,
    ) -> pa.Table:
        """The rows of typed envelopes of this contract, with each one's extras and
        extension attributes (None: no event has any), in order. `protected` says which
        envelopes are of protected events (None: none is)."""
        count = len(envelopes)
        times = list(map(_TIME, envelopes))
        if None in times:  # CloudEvents `time` is optional: the hub's enqueued time stands in
            times = [t if t is not None else q for t, q in zip(times, enqueued_times, strict=True)]
        event_time = timestamps(times)
        datas = list(map(_DATA, envelopes))
        # Every free string (attributes, text fields) is scrubbed of card numbers, together.
        texts = [
            pa.array(list(map(_ID, envelopes)), pa.string()),
            pa.array(list(map(_SOURCE, envelopes)), pa.string()),
            pa.array(list(map(_SUBJECT, envelopes)), pa.string()),
            *(pa.array(list(map(get, datas)), pa.string()) for get in self._text_getters),
        ]
        scrubbed = self._pseudonymizer.scrub_columns(texts)
        texts = [new if new is not None else old for old, new in zip(texts, scrubbed, strict=True)]
        text_of = dict(zip(self._text_fields, texts[3:], strict=True))
        columns: list[pa.Array] = [
            texts[0],
            pa.repeat(self._event_type, count),
            pa.repeat(self._version, count),
            texts[1],
            texts[2],
            event_time,
            timestamps(enqueued_times),
            pa.repeat(pa.scalar(ingested_at, TIMESTAMP), count),
            pa.repeat(pa.scalar(partition, pa.int32()), count),
            pa.array(sequence_numbers, pa.int64()),
        ]
        for name, get, arrow_type, pii in self._fields:
            if name in text_of:
                columns.append(text_of[name])
                continue
            values = list(map(get, datas))
            if pii is None:
                columns.append(pa.array(values, arrow_type))
                continue
            columns.extend(self._pii_columns(pii, values, datas, protected))
        columns.append(self._json_column(extras, count))
        columns.append(self._json_column(extensions, count))
        columns.append(pc.cast(event_time, pa.date32()))
        if self._scored:
            columns.extend(unscored(count, NOT_SCORED))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _pii_columns(
        self, pii: Pii, values: list[Any], datas: list[Any], protected: Sequence[bool] | None
    ) -> list[pa.Array]:
        """A PII field's pseudonyms, and the part kept if the contract keeps one."""
        kept_as = pii.kept_as
        if protected is None:  # raw values: hash them, slice the part kept
            columns = [pa.array(self._pseudonymizer.pseudonyms(values), pa.string())]
            if kept_as is not None:
                raw = pa.array(values, pa.string())
                columns.append(pc.utf8_slice_codeunits(raw, start=-pii.keep_last))
            return columns
        raw_at = [i for i, shielded in enumerate(protected) if not shielded]
        pseudonyms = list(values)  # a protected event's value is its pseudonym already
        for i, pseudonym in zip(
            raw_at, self._pseudonymizer.pseudonyms([values[i] for i in raw_at]), strict=True
        ):
            pseudonyms[i] = pseudonym
        columns = [pa.array(pseudonyms, pa.string())]
        if kept_as is not None:
            kept = [
                getattr(data, kept_as) if shielded else _last(value, pii.keep_last)
                for data, value, shielded in zip(datas, values, protected, strict=True)
            ]
            columns.append(pa.array(kept, pa.string()))
        return columns

    def _json_column(self, values: Sequence[dict[str, Any] | None] | None, count: int) -> pa.Array:
        if values is None or not any(values):
            return pa.nulls(count, pa.string())
        scrub = self._pseudonymizer.scrub
        return pa.array(
            [None if v is None else msgspec.json.encode(scrub(v)).decode() for v in values],
            pa.string(),
        )


RowBuilder = Callable[[Contract, Pseudonymizer], ContractRows]  # ContractRows, or one like it


def _last(value: str | None, count: int) -> str | None:
    return None if value is None else value[-count:]


def timestamps(values: Sequence[dt.datetime]) -> pa.Array:
    """UTC timestamps of aware datetimes (naive ones are taken as UTC), fast for the usual
    cases: one moment repeated (the enqueued time of a batch) or whole-minute UTC offsets
    (any RFC 3339 time msgspec decoded)."""
    count = len(values)
    if not count:
        return pa.array([], TIMESTAMP)
    if values.count(values[0]) == count:  # == compares instants
        return pa.repeat(pa.scalar(values[0], TIMESTAMP), count)
    if all(map(_whole_minutes, set(map(_TZINFO, values)))):
        # msgspec writes RFC 3339 in C and Arrow parses it in C: three times faster than
        # Arrow converting datetime objects one by one.
        text = msgspec.json.decode(msgspec.json.encode(values))
        return pa.array(text, pa.string()).cast(TIMESTAMP)
    return pa.array(values, TIMESTAMP)


def _whole_minutes(zone: dt.tzinfo | None) -> bool:
    if zone is dt.UTC:
        return True
    if not isinstance(zone, dt.timezone):  # naive, or zone rules RFC 3339 cannot spell
        return False
    return zone.utcoffset(None) % _MINUTE == dt.timedelta(0)


class DeadLetterRows:
    """Builds dead-letter batches; nothing raw that could be personal data reaches a column."""

    def __init__(self, registry: ContractRegistry, pseudonymizer: Pseudonymizer) -> None:
        self._pseudonymizer = pseudonymizer
        self._pii_fields = frozenset(name for c in registry.all() for name in c.pii)

    def table(
        self, rejections: Sequence[Rejection], position: Position, ingested_at: dt.datetime
    ) -> pa.Table:
        columns: dict[str, list[Any]] = {name: [] for name in DEADLETTER_SCHEMA.names}
        for rejection in rejections:
            document = self._document(rejection.body)
            attributes = document if isinstance(document, dict) else {}
            error = rejection.error
            columns["event_id"].append(self._attribute(attributes, "id"))
            columns["event_type"].append(error.contract or self._attribute(attributes, "type"))
            columns["schema_version"].append(None)
            columns["source"].append(self._attribute(attributes, "source"))
            columns["reason"].append(error.reason.value)
            columns["error"].append(self._pseudonymizer.scrub_text(error.message))
            columns["payload"].append(self._payload(rejection, document))
            columns["payload_bytes"].append(len(rejection.body))
            columns["namespace"].append(position.namespace)
            columns["hub"].append(position.hub)
            columns["consumer_group"].append(position.consumer_group)
            columns["partition"].append(position.partition)
            columns["sequence_number"].append(rejection.sequence_number)
            columns["offset"].append(rejection.offset)
            columns["enqueued_time"].append(rejection.enqueued_time)
            columns["ingested_at"].append(ingested_at)
            # A rejected event's own time is not to be trusted: it lands on its enqueued date.
            columns["event_date"].append(rejection.enqueued_time.astimezone(dt.UTC).date())
        return pa.Table.from_pydict(columns, schema=DEADLETTER_SCHEMA)

    def _document(self, body: bytes) -> Any:
        try:
            return msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return _UNPARSED

    def _attribute(self, attributes: dict[str, Any], name: str) -> str | None:
        value = attributes.get(name)
        if not isinstance(value, str):
            return None
        return self._pseudonymizer.scrub_text(value[:_MAX_ATTRIBUTE_CHARS])

    def _payload(self, rejection: Rejection, document: Any) -> str:
        if document is _UNPARSED:
            return self._pseudonymizer.scrub_text(rejection.body.decode("utf-8", "replace"))
        data = document.get("data") if isinstance(document, dict) else None
        if isinstance(data, dict):
            # A contract's PII field is pseudonymized whatever it holds, even a value that
            # failed validation (a mistyped card number is still a card number), except the
            # pseudonym that a protected event holds there already.
            for name in self._pii_fields & data.keys():
                value = data[name]
                if rejection.protected and isinstance(value, str) and _PSEUDONYM.match(value):
                    continue
                text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
                data[name] = self._pseudonymizer.pseudonym(text)
        return msgspec.json.encode(self._pseudonymizer.scrub(document)).decode()


_UNPARSED = object()


def unscored(count: int, reason: str) -> list[pa.Array]:
    """The scoring columns (`bronze_schema.SCORING`) of rows without a score, and why."""
    return [
        pa.nulls(count, field.type) if field.name != "score_reason" else pa.repeat(reason, count)
        for field in SCORING
    ]
