"""Records of a landing file checked against their contract: events, or dead-letter rejections.

A record is typed by the contract's msgspec Struct: CSV cells are text, so they are converted
per field type (numbers from text, an empty cell is a missing value); JSON and Parquet values
keep their own types and must match, as over HTTP. Fields the contract does not know are kept
as extras. Each record gets an event id made of its line and a keyed hash of its position
(the ordinal: several JSON objects may share a line) and content, so the same record of the
same file always has the same id, and an identical file dropped again (even as a new blob
version) lands rows that silver recognizes as duplicates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from shared.events.contracts import Contract
from shared.events.envelope import DecodedEvent
from shared.events.errors import EventRejected, Reason
from shared.events.pseudonymize import Pseudonymizer
from shared.events.representable import EventTimeWindow
from shared.files.records import FileRecord, FileReject
from shared.lakehouse.bronze_rows import Rejection

TIME_COLUMN = "time"  # CloudEvents' name for the event time; a file may carry it per record
_Timestamp = Annotated[dt.datetime, msgspec.Meta(tz=True)]
_ENCODE_ERRORS = (msgspec.EncodeError, TypeError, ValueError, OverflowError, RecursionError)
_READER_REASONS = (
    ("not UTF-8", Reason.NOT_UTF8),
    ("invalid JSON", Reason.MALFORMED_JSON),
    ("JSON nested", Reason.MALFORMED_JSON),
    ("malformed JSON", Reason.MALFORMED_JSON),
    ("not a JSON object", Reason.NOT_AN_EVENT),
)


class FileEnvelope(msgspec.Struct, frozen=True, gc=False):
    """What the bronze row builder reads of an event, for a record of a file. Not tracked by
    the garbage collector: it is made once per row, and refers only to immutable values."""

    id: str
    source: str
    subject: str | None
    time: dt.datetime | None
    data: Any


@dataclass
class CheckedRecords:
    """The valid records of a chunk as events, and the rejected ones, each with its line and
    its ordinal (its 1-based position among the file's records)."""

    events: list[DecodedEvent] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    ordinals: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)  # the ordinals of the rejections


def reader_reason(problem: str) -> Reason:
    """The dead-letter reason of a record the file reader could not read."""
    for prefix, reason in _READER_REASONS:
        if problem.startswith(prefix):
            return reason
    return Reason.UNREADABLE_RECORD


def file_rejection(
    error: EventRejected,
    source: str,
    event_type: str | None,
    line: int,
    arrived: dt.datetime,
    *,
    data: Any = None,
    event_id: str | None = None,
) -> Rejection:
    """A dead-letter entry for a record (or, at line 0, the whole file). Its body is shaped as
    a CloudEvent, so the dead-letter builder fills the id, type and source columns and
    pseudonymizes the contract's PII fields in `data` whatever they hold."""
    document: dict[str, Any] = {"source": source}
    if event_id is not None:
        document["id"] = event_id
    if event_type is not None:
        document["type"] = event_type
    if data is not None:
        document["data"] = data
    try:
        body = msgspec.json.encode(document)
    except _ENCODE_ERRORS:  # the reason is kept; the content cannot be
        document.pop("data", None)
        body = msgspec.json.encode(document)
    return Rejection(error, body, line, None, arrived)


class RecordChecker:
    """Checks one contract's records; stateless, so concurrent files can share it."""

    def __init__(self, contract: Contract, pseudonymizer: Pseudonymizer) -> None:
        self.contract = contract
        self._pseudonymizer = pseudonymizer
        self._fields = frozenset(contract.field_names)
        info = msgspec.inspect.type_info(contract.data)
        assert isinstance(info, msgspec.inspect.StructType)
        self.required = tuple(f.name for f in info.fields if f.required)
        self._time_field = next(
            (f.name for f in info.fields if _is_datetime(f.type)),
            None,
        )
        self._time_column = (
            TIME_COLUMN if self._time_field is None and TIME_COLUMN not in self._fields else None
        )
        # Ids are keyed by a key derived from the pseudonym key: without it they cannot be
        # recomputed from a guessed record (a card number and a few known fields).
        id_key = bytes.fromhex(pseudonymizer.pseudonym("landing event ids"))
        self._id_hash = hashlib.blake2b(key=id_key, digest_size=8)

    def check(
        self,
        records: Sequence[FileRecord],
        first: int,
        source: str,
        arrived: dt.datetime,
        *,
        text_values: bool,
    ) -> CheckedRecords:
        """Type, validate and identify consecutive records, the first being the file's
        `first`-th; `text_values` for CSV, whose cells are all text (converted per field
        type) and whose empty cells are missing values. A record's time must be in the
        window of event times around `arrived` (`EventTimeWindow`), as over HTTP."""
        out = CheckedRecords()
        window, time_field = EventTimeWindow(arrived), self._time_field
        contract, struct, fields = self.contract, self.contract.data, self._fields
        strict = not text_values
        convert, encode = msgspec.convert, msgspec.json.encode
        values: list[Any] = []
        kept: list[FileRecord] = []
        ordinals: list[int] = []
        contents: list[bytes] = []
        extras_of: list[dict[str, Any] | None] = []
        times: list[dt.datetime | None] = []

        def reject(record: FileRecord, ordinal: int, problem: str, **options: Any) -> None:
            out.rejections.append(
                self._rejected(record, ordinal, problem, source, arrived, **options)
            )
            out.rejected.append(ordinal)

        for ordinal, record in enumerate(records, start=first):
            data = record.data
            try:
                content = encode(data)
            except _ENCODE_ERRORS as error:
                reject(record, ordinal, f"the record holds a value that is not JSON data: {error}")
                continue
            if text_values and None in data.values():
                data = {name: value for name, value in data.items() if value is not None}
            extras: dict[str, Any] | None = None
            when: dt.datetime | None = None
            if not data.keys() <= fields:
                data, extras, when, bad_time = self._split(data, strict)
                if bad_time is not None:
                    reject(record, ordinal, bad_time, content=content, envelope=True)
                    continue
            try:
                value = convert(data, struct, strict=strict)
            except msgspec.ValidationError as error:
                reject(record, ordinal, str(error), content=content)
                continue
            if time_field is None:
                late = window.problem(when, TIME_COLUMN)
            else:
                late = window.problem(getattr(value, time_field), f"data.{time_field}")
            if late is not None:
                reject(record, ordinal, late, content=content, reason=Reason.OUT_OF_RANGE)
                continue
            values.append(value)
            kept.append(record)
            ordinals.append(ordinal)
            contents.append(content)
            extras_of.append(extras)
            times.append(when)
        failures = contract.violations(values)
        if failures:
            for index, problem in sorted(failures.items()):
                reject(kept[index], ordinals[index], problem, content=contents[index])
            keep = [i for i in range(len(values)) if i not in failures]
            values = [values[i] for i in keep]
            kept = [kept[i] for i in keep]
            ordinals = [ordinals[i] for i in keep]
            contents = [contents[i] for i in keep]
            extras_of = [extras_of[i] for i in keep]
            times = [times[i] for i in keep]
        lines = out.lines = [record.line for record in kept]
        out.ordinals = ordinals
        ids = self.event_ids(lines, ordinals, contents)
        if self._time_field is not None:
            times = [getattr(value, self._time_field) for value in values]
        # Struct envelopes (not tracked by the garbage collector) and tuple.__new__: this loop
        # runs once per row, and allocation is most of its cost.
        new, event = tuple.__new__, DecodedEvent
        out.events = [
            new(
                event,
                (contract, FileEnvelope(event_id, source, None, when, value), more, None, False),
            )
            for event_id, value, when, more in zip(ids, values, times, extras_of, strict=True)
        ]
        return out

    def _split(
        self, data: dict[str, Any], strict: bool
    ) -> tuple[dict[str, Any], dict[str, Any] | None, dt.datetime | None, str | None]:
        """The contract's fields, the extras, the record's time, and what is wrong with it."""
        known: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        for name, value in data.items():
            if name in self._fields:
                known[name] = value
            else:
                extras[name] = value
        when: dt.datetime | None = None
        column = self._time_column
        if column is not None and column in extras:
            moment = extras.pop(column)
            try:
                when = (
                    None if moment is None else msgspec.convert(moment, _Timestamp, strict=strict)
                )
            except msgspec.ValidationError:
                problem = f"{column} must be an RFC 3339 timestamp with a UTC offset"
                return known, None, None, problem
        return known, extras or None, when, None

    def unreadable(
        self, rejects: Sequence[FileReject], first: int, source: str, arrived: dt.datetime
    ) -> list[Rejection]:
        """Dead-letter entries for what the file reader could not read, the first being the
        file's `first`-th such (raw text kept, to be scrubbed of card numbers by the
        dead-letter builder)."""
        event_type = self.contract.event_type
        rejections = []
        for ordinal, reject in enumerate(rejects, start=first):
            # Line 0 is the whole file: it is not in the format its name says.
            reason = Reason.UNSUPPORTED_FILE if reject.line == 0 else reader_reason(reject.reason)
            error = EventRejected(reason, reject.reason, event_type)
            text = reject.raw.decode("utf-8", "replace") if reject.raw else None
            event_id = None
            if reject.line:
                event_id = self.event_ids([reject.line], [-ordinal], [reject.raw])[0]
            rejections.append(
                file_rejection(
                    error, source, event_type, reject.line, arrived, data=text, event_id=event_id
                )
            )
        return rejections

    def event_ids(
        self, lines: Sequence[int], ordinals: Sequence[int], contents: Sequence[bytes]
    ) -> list[str]:
        """`<line>-<16 hex>`: the line, and a keyed hash of the record's ordinal and content
        (keyed because the content may hold a card number)."""
        base = self._id_hash
        ids = []
        for line, ordinal, content in zip(lines, ordinals, contents, strict=True):
            digest = base.copy()
            digest.update(b"%d:" % ordinal)
            digest.update(content)
            ids.append(f"{line}-{digest.hexdigest()}")
        return ids

    def _rejected(
        self,
        record: FileRecord,
        ordinal: int,
        problem: str,
        source: str,
        arrived: dt.datetime,
        *,
        content: bytes | None = None,
        envelope: bool = False,
        reason: Reason | None = None,
    ) -> Rejection:
        event_type = self.contract.event_type
        if reason is None:
            reason = Reason.INVALID_ENVELOPE if envelope else Reason.INVALID_DATA
        error = EventRejected(reason, problem, event_type)
        event_id = None
        if content is not None:
            event_id = self.event_ids([record.line], [ordinal], [content])[0]
        return file_rejection(
            error,
            source,
            event_type,
            record.line,
            arrived,
            data=None if content is None else record.data,
            event_id=event_id,
        )


def _is_datetime(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.Metadata):
        return _is_datetime(info.type)
    return isinstance(info, msgspec.inspect.DateTimeType)
