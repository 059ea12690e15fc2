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

from shared.events.contracts import Contract
from shared.events.envelope import DecodedEvent, EventDecoder
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
        decode = self._decoder.decode
        buckets: dict[Contract, tuple[list[DecodedEvent], list[HubMessage]]] = {}
        rejected: list[tuple[EventRejected, HubMessage]] = []
        for message in messages:
            try:
                event = decode(message.get_body(), check=False)
            except EventRejected as error:
                rejected.append((error, message))
                continue
            bucket = buckets.get(event.contract)
            if bucket is None:
                bucket = buckets[event.contract] = ([], [])
            bucket[0].append(event)
            bucket[1].append(message)
        for contract, (events, held) in buckets.items():
            # The field checks run per column, over the whole batch.
            failures = contract.violations([e.envelope.data for e in events])
            if failures:
                for index, problem in failures.items():
                    failed = EventRejected(Reason.INVALID_DATA, problem, contract.event_type)
                    rejected.append((failed, held[index]))
                events[:] = [e for i, e in enumerate(events) if i not in failures]
                held[:] = [m for i, m in enumerate(held) if i not in failures]
        rejected.sort(key=lambda pair: _SEQUENCE(pair[1]))
        ingested_at = self._clock()
        key = app_id(position)
        for contract, (events, held) in buckets.items():
            if not events:
                continue
            builder = self._rows[contract]
            rows_after = _contract_rows(builder, events, held, position.partition, ingested_at)
            landed = self._writer.land(contract.table, builder.schema, key, last, rows_after)
            report.landed[contract.table] = landed.rows
            report.already_landed += len(events) - landed.rows
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
    events: list[DecodedEvent],
    held: list[HubMessage],
    partition: int,
    ingested_at: dt.datetime,
) -> RowsAfter:
    numbers = list(map(_SEQUENCE, held))
    times = list(map(_ENQUEUED, held))
    if None in times:  # Event Hubs always sets it; a hand-made event may not
        times = [t or ingested_at for t in times]

    def rows_after(landed: int | None) -> pa.Table | None:
        keep = _after(numbers, landed)
        if keep is None:
            return builder.table(events, numbers, times, partition, ingested_at)
        if not keep:
            return None
        return builder.table(
            [events[i] for i in keep],
            [numbers[i] for i in keep],
            [times[i] for i in keep],
            partition,
            ingested_at,
        )

    return rows_after


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
