"""The ingest service: one batch of one hub partition, decoded, validated, pseudonymized and
landed in bronze exactly once; rejected events go to the dead-letter table with the reason."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import pyarrow as pa

from shared.events.envelope import DecodedGroup, EventDecoder
from shared.events.errors import EventRejected, Reason
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.bronze import BronzeWriter, RowsAfter
from shared.lakehouse.bronze_rows import (
    ContractRows,
    DeadLetterRows,
    HubMessage,
    Position,
    Rejection,
)
from shared.lakehouse.bronze_schema import DEADLETTER_SCHEMA, DEADLETTER_TABLE

_SEQUENCE = attrgetter("sequence_number")
_ENQUEUED = attrgetter("enqueued_time")
_DATA = attrgetter("data")


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


class Ingestor:
    """Lands hub batches in bronze; stateless per batch, so any instance can take a partition."""

    def __init__(
        self,
        decoder: EventDecoder,
        pseudonymizer: Pseudonymizer,
        writer: BronzeWriter,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._decoder = decoder
        self._writer = writer
        self._clock = clock
        self._rows = {c: ContractRows(c, pseudonymizer) for c in decoder.registry.all()}
        self._deadletter = DeadLetterRows(decoder.registry, pseudonymizer)

    def ingest(self, position: Position, messages: Sequence[HubMessage]) -> IngestReport:
        """Land one batch (in partition order); raises LakeWriteFailed if bronze is unavailable,
        so that the batch is delivered again rather than lost."""
        report = IngestReport(position, len(messages))
        if not messages:
            return report
        sequence_numbers = list(map(_SEQUENCE, messages))
        if None in sequence_numbers:
            raise MissingHubPosition("an event of the batch has no sequence number")
        report.first_sequence_number = sequence_numbers[0]
        report.last_sequence_number = last = max(sequence_numbers)
        groups, failed = self._decoder.decode_batch([m.get_body() for m in messages])
        rejected = [(error, messages[index]) for index, error in failed]
        for contract, group in list(groups.items()):
            # The field checks run per column, over the whole batch.
            failures = contract.violations(list(map(_DATA, group.envelopes)))
            if failures:
                for at, problem in failures.items():
                    error = EventRejected(Reason.INVALID_DATA, problem, contract.event_type)
                    rejected.append((error, messages[group.indexes[at]]))
                keep = [i for i in range(len(group)) if i not in failures]
                groups[contract] = group.select(keep)
        rejected.sort(key=lambda pair: _SEQUENCE(pair[1]))
        ingested_at = self._clock()
        enqueued_times = list(map(_ENQUEUED, messages))
        if None in enqueued_times:  # Event Hubs always sets it; a hand-made event may not
            enqueued_times = [t or ingested_at for t in enqueued_times]
        key = app_id(position)
        for contract, group in groups.items():
            if not len(group):
                continue
            builder = self._rows[contract]
            if len(group) == len(messages):  # the whole batch is of one contract
                numbers, times = sequence_numbers, enqueued_times
            else:
                numbers = [sequence_numbers[i] for i in group.indexes]
                times = [enqueued_times[i] for i in group.indexes]
            rows_after = _contract_rows(
                builder, group, numbers, times, position.partition, ingested_at
            )
            landed = self._writer.land(contract.table, builder.schema, key, last, rows_after)
            report.landed[contract.table] = landed.rows
            report.already_landed += len(group) - landed.rows
        if rejected:
            self._land_rejected(position, key, last, rejected, ingested_at, report)
        return report

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
        rejected: list[tuple[EventRejected, HubMessage]],
        ingested_at: dt.datetime,
        report: IngestReport,
    ) -> None:
        rejections = [
            Rejection(
                error,
                message.get_body(),
                _SEQUENCE(message),
                _offset(message.offset),
                message.enqueued_time or ingested_at,
            )
            for error, message in rejected
        ]
        for rejection in rejections:
            reason = rejection.error.reason.value
            report.reasons[reason] = report.reasons.get(reason, 0) + 1
        numbers = [r.sequence_number for r in rejections]

        def rows_after(landed: int | None) -> pa.Table | None:
            keep = _after(numbers, landed)
            chosen = rejections if keep is None else [rejections[i] for i in keep]
            return self._deadletter.table(chosen, position, ingested_at) if chosen else None

        landed = self._writer.land(DEADLETTER_TABLE, DEADLETTER_SCHEMA, key, last, rows_after)
        report.rejected = len(rejections)
        report.landed[DEADLETTER_TABLE] = landed.rows
        report.already_landed += len(rejections) - landed.rows


def _contract_rows(
    builder: ContractRows,
    group: DecodedGroup,
    numbers: list[int],
    times: list[dt.datetime],
    partition: int,
    ingested_at: dt.datetime,
) -> RowsAfter:
    def rows_after(landed: int | None) -> pa.Table | None:
        keep = _after(numbers, landed)
        if keep is None:
            return _build(builder, group, numbers, times, partition, ingested_at)
        if not keep:
            return None
        return _build(
            builder,
            group.select(keep),
            [numbers[i] for i in keep],
            [times[i] for i in keep],
            partition,
            ingested_at,
        )

    return rows_after


def _build(
    builder: ContractRows,
    group: DecodedGroup,
    numbers: list[int],
    times: list[dt.datetime],
    partition: int,
    ingested_at: dt.datetime,
) -> pa.Table:
    return builder.build(
        group.envelopes,
        numbers,
        times,
        partition,
        ingested_at,
        extras=group.extras,
        extensions=group.extensions,
    )


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
