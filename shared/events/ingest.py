"""The ingest service: one batch of one hub partition, decoded, validated, pseudonymized and
landed in bronze exactly once; rejected events go to the dead-letter table with the reason.

An event that passes validation and still cannot be built into a row or landed (bad data the
checks do not know, a bug) is isolated by bisecting its group and dead-lettered alone
(`processing_error`), so that the partition moves on; a transient failure (the lake is
unreachable) raises, and the batch is delivered again (`shared.events.failures`)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from shared.events.contracts import Contract
from shared.events.envelope import DecodedGroup, EventDecoder
from shared.events.errors import EventRejected, Reason
from shared.events.failures import UNLANDABLE, isolate, processing_error
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.bronze import BronzeWriter
from shared.lakehouse.bronze_rows import (
    ContractRows,
    DeadLetterRows,
    HubMessage,
    Position,
    Rejection,
    RowBuilder,
)
from shared.lakehouse.bronze_schema import DEADLETTER_SCHEMA, DEADLETTER_TABLE

_SEQUENCE = attrgetter("sequence_number")
_ENQUEUED = attrgetter("enqueued_time")
_DATA = attrgetter("data")
T = TypeVar("T")


log = logging.getLogger(__name__)


class MissingHubPosition(ValueError):
    """The trigger did not say where the batch was read; exactly-once needs to know."""


def position_from_metadata(metadata: Mapping[str, Any] | None) -> Position:
    """The batch's hub position from the trigger metadata's `PartitionContext`, as the
    Functions host supplies it (`events[0].metadata` for cardinality many)."""
    context = (metadata or {}).get("PartitionContext")
    if isinstance(context, str | bytes):
        context = json.loads(context)
    if not isinstance(context, Mapping):
        raise MissingHubPosition("the trigger metadata has no PartitionContext")
    try:
        return Position(
            namespace=str(context.get("FullyQualifiedNamespace") or "").lower(),
            hub=str(context["EventHubName"]).lower(),
            consumer_group=str(context["ConsumerGroup"]).lower(),
            partition=int(context["PartitionId"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise MissingHubPosition(f"PartitionContext is incomplete: {error!r}") from error


def app_id(position: Position) -> str:
    """The Delta application transaction id of a hub partition, as read by a consumer group."""
    p = position
    return f"eventhubs:{p.namespace}/{p.hub}/{p.consumer_group}/{p.partition}"


@dataclass
class IngestReport:
    """What one batch did: events in, rows landed per table, rejections, replays skipped."""

    position: Position
    events: int
    first_sequence_number: int | None = None
    last_sequence_number: int | None = None
    landed: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    already_landed: int = 0

    def to_log(self) -> dict[str, Any]:
        """A log record without any event content."""
        return {
            "event": "ingest",
            "hub": self.position.hub,
            "consumer_group": self.position.consumer_group,
            "partition": self.position.partition,
            "sequence_numbers": f"{self.first_sequence_number}-{self.last_sequence_number}",
            "events": self.events,
            "landed": self.landed,
            "rejected": self.rejected,
            "reasons": self.reasons,
            "already_landed": self.already_landed,
        }


class Scoring(Protocol):
    """A group's scoring (`shared.models.stream.ScoredGroup`): the bronze scoring columns
    (None: the contract has none) and the feature states to write once the rows landed."""

    @property
    def columns(self) -> list[pa.Array] | None: ...

    def commit(self) -> None: ...


class GroupScorer(Protocol):
    """Scores one contract's events of a batch (`shared.models.stream.StreamScorer`)."""

    def score(
        self,
        contract: Contract,
        envelopes: Sequence[Any],
        enqueued_times: Sequence[dt.datetime],
        sequence_numbers: Sequence[int],
        partition: int,
    ) -> Scoring | None: ...


class Ingestor:
    """Lands hub batches in bronze; stateless per batch, so any instance can take a partition
    (the online features' state lives in the feature store, written after each landing).

    `scorer` gives the stream scorer when the batch needs it (None, or one that cannot be
    built: the rows land unscored, `not_scored`)."""

    def __init__(
        self,
        decoder: EventDecoder,
        pseudonymizer: Pseudonymizer,
        writer: BronzeWriter,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        row_builder: RowBuilder = ContractRows,
        scorer: Callable[[], GroupScorer | None] | None = None,
    ) -> None:
        self._decoder = decoder
        self._writer = writer
        self._clock = clock
        self._rows = {c: row_builder(c, pseudonymizer) for c in decoder.registry.all()}
        self._deadletter = DeadLetterRows(decoder.registry, pseudonymizer)
        self._scorer = scorer

    def ingest(
        self,
        position: Position,
        messages: Sequence[HubMessage],
        protected: Sequence[bool] | None = None,
    ) -> IngestReport:
        """Land one batch (in partition order); raises LakeWriteFailed (or another transient
        error) if bronze is unavailable, so that the batch is delivered again rather than lost.
        `protected` says which events intake protected (`shared.events.protection`; None:
        none did): their PII fields are pseudonyms already."""
        report = IngestReport(position, len(messages))
        if not messages:
            return report
        sequence_numbers = list(map(_SEQUENCE, messages))
        if None in sequence_numbers:
            raise MissingHubPosition("an event of the batch has no sequence number")
        report.first_sequence_number = sequence_numbers[0]
        report.last_sequence_number = last = max(sequence_numbers)
        if protected is not None and True not in protected:
            protected = None
        bodies = [m.get_body() for m in messages]
        groups, failed = self._decoder.decode_batch(bodies, protected)
        rejected = [(error, index) for index, error in failed]
        for contract, group in list(groups.items()):
            # The field checks run per column, over the whole batch.
            datas = list(map(_DATA, group.envelopes))
            failures = contract.violations(datas, group.protected)
            if failures:
                for at, problem in failures.items():
                    error = EventRejected(Reason.INVALID_DATA, problem, contract.event_type)
                    rejected.append((error, group.indexes[at]))
                keep = [i for i in range(len(group)) if i not in failures]
                groups[contract] = group.select(keep)
        ingested_at = self._clock()
        enqueued_times = list(map(_ENQUEUED, messages))
        if None in enqueued_times:  # Event Hubs always sets it; a hand-made event may not
            enqueued_times = [t or ingested_at for t in enqueued_times]
        key = app_id(position)

        def dead_letter(entries: list[tuple[EventRejected, int]], app: str, version: int) -> None:
            # The events at these indexes of the batch, each with its error.
            rejections = [
                Rejection(
                    error,
                    messages[index].get_body(),
                    sequence_numbers[index],
                    _offset(messages[index].offset),
                    messages[index].enqueued_time or ingested_at,
                    protected is not None and protected[index],
                )
                for error, index in entries
            ]
            self._land_rejected(position, app, version, rejections, ingested_at, report)

        def refused(index: int, cause: Exception, event_type: str) -> None:
            # Committed at once, under its own txn (see `failures.UNLANDABLE`).
            refusal = [(processing_error(cause, event_type), index)]
            dead_letter(refusal, key + UNLANDABLE, sequence_numbers[index])

        for contract, group in groups.items():
            if not len(group):
                continue
            if len(group) == len(messages):  # the whole batch is of one contract
                numbers, times = sequence_numbers, enqueued_times
            else:
                numbers = [sequence_numbers[i] for i in group.indexes]
                times = [enqueued_times[i] for i in group.indexes]
            scoring = self._score(contract, group.envelopes, times, numbers, position.partition)
            rows = _GroupRows(self._rows[contract], group, numbers, times, position.partition)
            for at, cause in rows.build(ingested_at, scoring.columns if scoring else None):
                failure = processing_error(cause, contract.event_type)
                rejected.append((failure, group.indexes[at]))
            rows.land(self._writer, key, last, report, refused)
            if scoring is not None:
                scoring.commit()  # after the rows landed: a redelivery never counts twice
        if rejected:
            rejected.sort(key=lambda pair: sequence_numbers[pair[1]])
            dead_letter(rejected, key, last)
        return report

    def _score(
        self,
        contract: Contract,
        envelopes: Sequence[Any],
        times: Sequence[dt.datetime],
        numbers: Sequence[int],
        partition: int,
    ) -> Scoring | None:
        if self._scorer is None:
            return None
        try:
            scorer = self._scorer()
        except Exception as error:  # no feature store or registry: land unscored
            log.warning("scoring unavailable, landing unscored: %s", error)
            return None
        if scorer is None:
            return None
        return scorer.score(contract, envelopes, times, numbers, partition)

    def compact_bronze(self) -> dict[str, dict[str, Any]]:
        """Compact every bronze table this ingestor writes; optimize metrics per table."""
        tables = [builder.contract.table for builder in self._rows.values()]
        done: dict[str, dict[str, Any]] = {}
        for table in [*tables, DEADLETTER_TABLE]:
            metrics = self._writer.compact(table)
            if metrics is not None:
                done[table] = metrics
        return done

    def _land_rejected(
        self,
        position: Position,
        key: str,
        last: int,
        rejections: list[Rejection],
        ingested_at: dt.datetime,
        report: IngestReport,
    ) -> None:
        for rejection in rejections:
            reason = rejection.error.reason.value
            report.reasons[reason] = report.reasons.get(reason, 0) + 1
        numbers = [r.sequence_number for r in rejections]

        def rows_after(landed: int | None) -> pa.Table | None:
            keep = _after(numbers, landed)
            chosen = rejections if keep is None else [rejections[i] for i in keep]
            return self._deadletter.table(chosen, position, ingested_at) if chosen else None

        landed = self._writer.land(DEADLETTER_TABLE, DEADLETTER_SCHEMA, key, last, rows_after)
        report.rejected += len(rejections)
        report.landed[DEADLETTER_TABLE] = report.landed.get(DEADLETTER_TABLE, 0) + landed.rows
        report.already_landed += len(rejections) - landed.rows


class _GroupRows:
    """One contract's events of a batch as bronze rows, built and landed apart from the events
    that fail deterministically."""

    def __init__(
        self,
        builder: ContractRows,
        group: DecodedGroup,
        numbers: list[int],
        times: list[dt.datetime],
        partition: int,
    ) -> None:
        self._builder = builder
        self._group = group
        self._numbers = numbers
        self._times = times
        self._partition = partition
        self._kept: list[int] = []  # the group's positions of the rows built
        self._table: pa.Table | None = None

    def build(
        self, ingested_at: dt.datetime, scoring: list[pa.Array] | None = None
    ) -> list[tuple[int, Exception]]:
        """Build the rows, before any commit (rows built in a group commit would fail the
        other partitions' batches with it), with the group's scoring columns when given;
        returns the events that cannot be built."""
        parts: list[tuple[list[int], pa.Table]] = []
        builder, group, numbers, times = self._builder, self._group, self._numbers, self._times

        def attempt(chosen: list[int]) -> None:
            whole = len(chosen) == len(group)
            table = builder.build(
                group.envelopes if whole else [group.envelopes[i] for i in chosen],
                numbers if whole else [numbers[i] for i in chosen],
                times if whole else [times[i] for i in chosen],
                self._partition,
                ingested_at,
                extras=_pick(group.extras, chosen, whole),
                extensions=_pick(group.extensions, chosen, whole),
                protected=_pick(group.protected, chosen, whole),
            )
            if scoring is not None:
                table = _with_scoring(
                    table, scoring if whole else [c.take(chosen) for c in scoring]
                )
            parts.append((chosen, table))

        failures = isolate(range(len(group)), attempt)
        self._kept = [i for chosen, _ in parts for i in chosen]
        if parts:
            tables = [table for _, table in parts]
            self._table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        return failures

    def land(
        self,
        writer: BronzeWriter,
        key: str,
        last: int,
        report: IngestReport,
        refused: Callable[[int, Exception, str], None],
    ) -> None:
        """Land the rows built, with txn version `last`; rows the appender refuses for good
        are isolated (each part committed with its own last sequence number, in order) and
        passed to `refused` (batch index, error, event type) before the rows after them land."""
        table, kept = self._table, self._kept
        if table is None:
            return
        builder, numbers = self._builder, self._numbers
        name = builder.contract.table
        final = kept[-1]

        def attempt(chosen: list[int]) -> None:
            # `chosen` are positions in `kept`, hence in `table`.
            picked = [numbers[kept[i]] for i in chosen]
            part = table if len(chosen) == len(kept) else table.take(chosen)
            version = last if kept[chosen[-1]] == final else picked[-1]

            def rows_after(landed: int | None) -> pa.Table | None:
                keep = _after(picked, landed)
                if keep is None:
                    return part
                return part.take(keep) if keep else None

            landed = writer.land(name, builder.schema, key, version, rows_after)
            report.landed[name] = report.landed.get(name, 0) + landed.rows
            report.already_landed += len(chosen) - landed.rows

        indexes, event_type = self._group.indexes, builder.contract.event_type

        def failed(at: int, error: Exception) -> None:
            refused(indexes[kept[at]], error, event_type)

        isolate(range(len(kept)), attempt, failed)


def _with_scoring(table: pa.Table, columns: list[pa.Array]) -> pa.Table:
    """The table with its last columns (the scoring ones) replaced."""
    first = table.num_columns - len(columns)
    for offset, column in enumerate(columns):
        table = table.set_column(first + offset, table.schema.field(first + offset), column)
    return table


def _pick(values: list[T] | None, chosen: list[int], whole: bool) -> list[T] | None:
    if values is None or whole:
        return values
    return [values[i] for i in chosen]


def _after(numbers: list[int], landed: int | None) -> list[int] | None:
    """Indexes of the numbers above `landed`, or None when that is all of them."""
    if landed is None or min(numbers) > landed:
        return None
    return [i for i, number in enumerate(numbers) if number > landed]


def _offset(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
