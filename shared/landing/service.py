"""The landing service: files from the landing container into bronze, exactly once per version.

A file is read a chunk at a time through its contract; valid rows are committed in batches
(`commit_rows`), rejected records go to the dead-letter table, and so does a valid record whose
row cannot be built (`processing_error`, found by bisecting its chunk): one bad value never
fails the file. Each commit carries a Delta
application transaction whose app id names the blob path and version (ETag) and whose version
is the ordinal of the last record committed (its position among the file's records: lines do
not do, as a minified JSON array has all its objects on line 1). What the reader could not
read is counted apart, under the app id with `#unreadable`. A redelivered file finds every
record landed and adds nothing; a file whose landing failed midway (the lake went away, the
host crashed) is read again from the start, and the records already landed are skipped.

Rows from files carry the same lineage as events: `source` is the blob path, `event_id` the
line and a keyed hash of the record, `event_time` the record's `time` (or the contract's
timestamp field) else the blob's last-modified time, `enqueued_time` the last-modified time,
`partition` -1 (no hub partition), `sequence_number` the line, and `extensions` the version.
Dead-letter rows of files have `source` = the blob path and `sequence_number` = the line (0:
the whole file), with `hub` = the container and `consumer_group` = `$file`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from shared.events.contracts import ContractRegistry
from shared.events.envelope import DecodedEvent
from shared.events.errors import EventRejected, Reason
from shared.events.failures import UNLANDABLE, isolate, processing_error
from shared.events.pseudonymize import Pseudonymizer
from shared.files.reader import READERS, read_records
from shared.files.records import FileChunk
from shared.lakehouse.bronze import BronzeWriter
from shared.lakehouse.bronze_rows import (
    ContractRows,
    DeadLetterRows,
    Position,
    Rejection,
    RowBuilder,
)
from shared.lakehouse.bronze_schema import DEADLETTER_SCHEMA, DEADLETTER_TABLE
from shared.landing.file import LandingFile
from shared.landing.records import RecordChecker, file_rejection

FILE_PARTITION = -1  # the bronze `partition` of rows from files: they come from no hub partition
FILE_CONSUMER = "$file"  # the dead-letter `consumer_group` of rejections from files
UNREADABLE = "#unreadable"  # the app id suffix of what the reader could not read
TEXT_FORMATS = frozenset({".csv"})  # formats whose values are all text, typed by the contract


@dataclass
class LandingReport:
    """What landing one file did: records read, rows landed per table, rejections, replays."""

    file: str
    version: str
    event_type: str | None
    records: int = 0
    landed: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    already_landed: int = 0
    commits: int = 0
    seconds: float = 0.0

    def to_log(self) -> dict[str, Any]:
        """A log record without any record content."""
        return {
            "event": "landing",
            "file": self.file,
            "version": self.version,
            "event_type": self.event_type,
            "records": self.records,
            "landed": self.landed,
            "rejected": self.rejected,
            "reasons": self.reasons,
            "already_landed": self.already_landed,
            "commits": self.commits,
            "seconds": round(self.seconds, 3),
        }


class FileLanding:
    """Lands landing files in bronze; stateless per file, so files can land concurrently."""

    def __init__(
        self,
        registry: ContractRegistry,
        pseudonymizer: Pseudonymizer,
        writer: BronzeWriter,
        *,
        chunk_records: int = 5_000,
        commit_rows: int = 50_000,
        commit_bytes: int = 64 * 1024 * 1024,
        give_up_after: int = 1_000,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        row_builder: RowBuilder = ContractRows,
    ) -> None:
        self._registry = registry
        self._writer = writer
        self._clock = clock
        self._chunk_records = min(chunk_records, commit_rows)  # a chunk fits in one commit
        self._limits = _Limits(commit_rows, commit_bytes)
        self._give_up_after = give_up_after
        latest = registry.latest()
        self._checkers = {c.event_type: RecordChecker(c, pseudonymizer) for c in latest}
        self._rows = {c.event_type: row_builder(c, pseudonymizer) for c in latest}
        self._deadletter = DeadLetterRows(registry, pseudonymizer)

    def land(self, file: LandingFile) -> LandingReport:
        """Land one file version; raises LakeWriteFailed if bronze is unavailable, so that
        the file is tried again (what landed before is not landed twice)."""
        started = time.perf_counter()
        event_type = file.event_type
        checker = None if event_type is None else self._checkers.get(event_type)
        builder = None if checker is None else self._rows[checker.contract.event_type]
        batch = _Batch(file, self._writer, builder, self._deadletter, self._clock, self._limits)
        if checker is None:
            batch.reject_file(Reason.UNKNOWN_TYPE, self._unknown_type(file), line=0, ordinal=1)
        elif file.suffix not in READERS:
            supported = ", ".join(sorted(READERS))
            problem = f"unsupported file type {file.suffix or '(none)'!r}: not one of {supported}"
            batch.reject_file(Reason.UNSUPPORTED_FILE, problem, line=0, ordinal=1)
        else:
            self._read(file, checker, batch)
        batch.flush()
        batch.report.seconds = time.perf_counter() - started
        return batch.report

    def _read(self, file: LandingFile, checker: RecordChecker, batch: _Batch) -> None:
        text_values = file.suffix in TEXT_FORMATS
        # Each batch commits its rejections before its rows, so every record up to the rows'
        # version is landed one way or the other.
        records_done = self._writer.landed_version(checker.contract.table, file.app_id) or 0
        unreadable_done = self._writer.landed_version(DEADLETTER_TABLE, batch.unreadable_id) or 0
        records_read = rejects_read = last_line = 0
        for chunk in read_records(file.stream, file.path, chunk_records=self._chunk_records):
            batch.report.records += len(chunk)
            first_record, first_reject = records_read + 1, rejects_read + 1
            records_read += len(chunk.records)
            rejects_read += len(chunk.rejects)
            last_line = max([last_line, *(r.line for r in chunk.records[-1:])])
            last_line = max([last_line, *(r.line for r in chunk.rejects)])
            problem = None
            if first_record == 1 and chunk.records and text_values:
                problem = _header_problem(checker, chunk.records[0].data)
            elif records_read == 0 and rejects_read >= self._give_up_after:
                problem = _unreadable_problem(file, batch, chunk, rejects_read, last_line)
            if problem is not None:
                reason, message, line = problem
                batch.reject_file(reason, message, line=line, ordinal=rejects_read + 1)
                return
            records = chunk.records[max(records_done - first_record + 1, 0) :]
            rejects = chunk.rejects[max(unreadable_done - first_reject + 1, 0) :]
            batch.report.already_landed += len(chunk) - len(records) - len(rejects)
            arrived, path = batch.arrived, file.path
            if records:
                first = records_read - len(records) + 1
                checked = checker.check(records, first, path, arrived, text_values=text_values)
                batch.add_rows(checked.events, checked.lines, checked.ordinals)
                batch.add_rejections(checked.rejections, checked.rejected)
            if rejects:
                first = rejects_read - len(rejects) + 1
                rejections = checker.unreadable(rejects, first, path, arrived)
                batch.add_unreadable(rejections, list(range(first, rejects_read + 1)))
            if batch.full:
                batch.flush()

    def _unknown_type(self, file: LandingFile) -> str:
        known = ", ".join(self._registry.types)
        if file.event_type is None:
            return (
                f"a landing file goes in a folder named after its event type,"
                f" {file.container}/<event type>/<file>; known types: {known}"
            )
        return f"unknown event type folder {file.event_type!r}; known types: {known}"


_Problem = tuple[Reason, str, int]  # a reason to reject a whole file, and the line it stops at


def _header_problem(checker: RecordChecker, first: dict[str, Any]) -> _Problem | None:
    """A CSV whose header lacks a required field would reject every row: reject it whole."""
    missing = [name for name in checker.required if name not in first]
    if not missing:
        return None
    message = (
        f"the header has no column for {', '.join(missing)} (a landing CSV is UTF-8,"
        " with a header row naming the contract's fields)"
    )
    return Reason.INVALID_DATA, message, 0


def _unreadable_problem(
    file: LandingFile, batch: _Batch, chunk: FileChunk, count: int, line: int
) -> _Problem:
    """A file of which nothing could be read so far is likely not in its format at all."""
    first = batch.first_problem or chunk.rejects[0].reason
    message = (
        f"none of the first {count} records could be read (first: {first}); is it a"
        f" {file.suffix} file? Not read past line {line}"
    )
    return Reason.UNSUPPORTED_FILE, message, line


@dataclass(frozen=True)
class _Limits:
    rows: int
    bytes: int


class _Batch:
    """One file's rows and rejections waiting for their commit, and the file's report."""

    def __init__(
        self,
        file: LandingFile,
        writer: BronzeWriter,
        builder: ContractRows | None,
        deadletter: DeadLetterRows,
        clock: Callable[[], dt.datetime],
        limits: _Limits,
    ) -> None:
        self._file = file
        self._writer = writer
        self._builder = builder
        self._deadletter = deadletter
        self._clock = clock
        self._limits = limits
        self.report = LandingReport(file.path, file.version, file.event_type)
        self.arrived = file.modified or clock()
        self.unreadable_id = file.app_id + UNREADABLE
        self.first_problem: str | None = None
        self._position = Position(file.namespace, file.container, FILE_CONSUMER, FILE_PARTITION)
        self._extensions = json.dumps({"fileversion": file.version})
        self._tables: list[pa.Table] = []
        self._ordinals: list[int] = []  # of the rows in `_tables`
        self._rejections: list[tuple[int, Rejection]] = []
        self._unreadable: list[tuple[int, Rejection]] = []
        self._bytes = 0

    @property
    def full(self) -> bool:
        pending = len(self._ordinals) + len(self._rejections) + len(self._unreadable)
        return pending >= self._limits.rows or self._bytes >= self._limits.bytes

    def add_rows(self, events: list[DecodedEvent], lines: list[int], ordinals: list[int]) -> None:
        if not events:
            return
        builder, ingested_at = self._builder, self._clock()
        assert builder is not None

        def attempt(chosen: list[int]) -> None:
            whole = len(chosen) == len(events)
            table = builder.table(
                events if whole else [events[i] for i in chosen],
                lines if whole else [lines[i] for i in chosen],
                [self.arrived] * len(chosen),
                FILE_PARTITION,
                ingested_at,
            )
            index = table.schema.get_field_index("extensions")
            stamp = pa.repeat(pa.scalar(self._extensions, pa.string()), len(chosen))
            self._tables.append(table.set_column(index, table.schema.field(index), stamp))
            self._ordinals.extend(ordinals if whole else [ordinals[i] for i in chosen])
            self._bytes += table.nbytes

        for at, error in isolate(range(len(events)), attempt):
            envelope = events[at].envelope
            failure = processing_error(error, builder.contract.event_type)
            rejection = file_rejection(
                failure,
                self._file.path,
                self._file.event_type,
                lines[at],
                self.arrived,
                data=envelope.data,
                event_id=envelope.id,
            )
            self.add_rejections([rejection], [ordinals[at]])

    def add_rejections(self, rejections: list[Rejection], ordinals: list[int]) -> None:
        self._rejections.extend(zip(ordinals, rejections, strict=True))
        self._bytes += sum(len(r.body) for r in rejections)

    def add_unreadable(self, rejections: list[Rejection], ordinals: list[int]) -> None:
        if self.first_problem is None and rejections:
            self.first_problem = rejections[0].error.message
        self._unreadable.extend(zip(ordinals, rejections, strict=True))
        self._bytes += sum(len(r.body) for r in rejections)

    def reject_file(self, reason: Reason, problem: str, *, line: int, ordinal: int) -> None:
        """Dead-letter the file as a whole (at `line` 0 when none of it was read); `ordinal`
        follows those of what the reader could not read until then."""
        event_type = self._file.event_type
        contract = None if self._builder is None else self._builder.contract.event_type
        error = EventRejected(reason, f"{self._file.path}: {problem}", contract)
        rejection = file_rejection(error, self._file.path, event_type, line, self.arrived)
        self._unreadable.append((ordinal, rejection))

    def flush(self) -> None:
        """Commit the rejections, then the rows (see `FileLanding._read` for why this order)."""
        self._flush_rejections(self._rejections, self._file.app_id)
        self._flush_rejections(self._unreadable, self.unreadable_id)
        self._rejections, self._unreadable = [], []
        self._flush_rows()
        self._bytes = 0

    def _flush_rejections(self, pending: list[tuple[int, Rejection]], app_id: str) -> None:
        if not pending:
            return
        position, build, ingested_at = self._position, self._deadletter.table, self._clock()
        chosen: list[Rejection] = []

        pending = sorted(pending, key=lambda item: item[0])

        def rows_after(done: int | None) -> pa.Table | None:
            chosen[:] = [r for ordinal, r in pending if done is None or ordinal > done]
            return build(chosen, position, ingested_at) if chosen else None

        last = pending[-1][0]
        landed = self._writer.land(DEADLETTER_TABLE, DEADLETTER_SCHEMA, app_id, last, rows_after)
        report = self.report
        _count(report, DEADLETTER_TABLE, len(pending), landed.rows)
        if landed.rows:  # what this delivery dead-lettered, not what an earlier one did
            report.rejected += len(chosen)
            for rejection in chosen:
                reason = rejection.error.reason.value
                report.reasons[reason] = report.reasons.get(reason, 0) + 1

    def _flush_rows(self) -> None:
        if not self._tables:
            return
        assert self._builder is not None
        tables, ordinals = self._tables, self._ordinals
        self._tables, self._ordinals = [], []
        data = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        contract = self._builder.contract
        table, schema = contract.table, self._builder.schema

        def attempt(chosen: list[int]) -> None:
            whole = len(chosen) == len(ordinals)
            part = data if whole else data.take(chosen)
            numbers = ordinals if whole else [ordinals[i] for i in chosen]

            def rows_after(done: int | None) -> pa.Table | None:
                # The rows are in ordinal order: those after `done` are a tail.
                start = 0 if done is None else bisect.bisect_right(numbers, done)
                return part.slice(start) if start < len(numbers) else None

            landed = self._writer.land(table, schema, self._file.app_id, numbers[-1], rows_after)
            _count(self.report, table, len(numbers), landed.rows)

        def refused(at: int, error: Exception) -> None:
            # Committed at once, under its own txn (see `failures.UNLANDABLE`).
            row = data.slice(at, 1).select(["event_id", "sequence_number"]).to_pylist()[0]
            failure = processing_error(error, contract.event_type)
            rejection = file_rejection(
                failure,
                self._file.path,
                self._file.event_type,
                row["sequence_number"],
                self.arrived,
                event_id=row["event_id"],
            )
            self._flush_rejections([(ordinals[at], rejection)], self._file.app_id + UNLANDABLE)

        isolate(range(len(ordinals)), attempt, refused)


def _count(report: LandingReport, table: str, rows: int, landed: int) -> None:
    report.already_landed += rows - landed
    if landed:
        report.landed[table] = report.landed.get(table, 0) + landed
        report.commits += 1
