"""The bronze tables' Arrow schemas: lineage, then the contract's fields (PII as pseudonyms),
then extras; and the dead-letter table's. Derived from the contracts, never written by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pyarrow as pa

from shared.events.contracts import Contract

BRONZE = "bronze"
DEADLETTER_TABLE = "deadletter"
PARTITION_COLUMN = "event_date"
TIMESTAMP = pa.timestamp("us", tz="UTC")

LINEAGE: tuple[pa.Field, ...] = (
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("schema_version", pa.int32(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("subject", pa.string()),
    pa.field("event_time", TIMESTAMP, nullable=False),
    pa.field("enqueued_time", TIMESTAMP, nullable=False),
    pa.field("ingested_at", TIMESTAMP, nullable=False),
    pa.field("partition", pa.int32(), nullable=False),
    pa.field("sequence_number", pa.int64(), nullable=False),
)
TRAILER: tuple[pa.Field, ...] = (
    pa.field("extras", pa.string()),  # unknown data fields, JSON, card numbers pseudonymized
    pa.field("extensions", pa.string()),  # CloudEvents extension attributes, JSON
    pa.field(PARTITION_COLUMN, pa.date32(), nullable=False),
)
# The score of an event as it landed, for a contract a model scores (`Contract.scored_by`):
# last, so that a table from before scoring gains them at its end (Delta's schema merge).
SCORING: tuple[pa.Field, ...] = (
    pa.field("score", pa.float64()),
    pa.field("model_name", pa.string()),
    pa.field("model_version", pa.int32()),
    pa.field("score_reason", pa.string()),  # why there is no score (null when there is)
)
NOT_SCORED = "not_scored"  # no scorer ran (an ingestor without models, a file landing)
# Per-file statistics only where readers filter: each stats column costs on every commit.
TABLE_CONFIGURATION = {
    "delta.dataSkippingStatsColumns": "event_time,enqueued_time,sequence_number",
    # Silver reads bronze through the feed, so compaction never makes it reread rows.
    "delta.enableChangeDataFeed": "true",
}

DEADLETTER_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("schema_version", pa.int32()),
        pa.field("source", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("payload_bytes", pa.int64(), nullable=False),
        pa.field("namespace", pa.string(), nullable=False),
        pa.field("hub", pa.string(), nullable=False),
        pa.field("consumer_group", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("sequence_number", pa.int64(), nullable=False),
        pa.field("offset", pa.int64()),
        pa.field("enqueued_time", TIMESTAMP, nullable=False),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
        pa.field(PARTITION_COLUMN, pa.date32(), nullable=False),
    ]
)


class UnsupportedFieldType(TypeError):
    """A contract field has a type the bronze schema cannot map."""


def arrow_type(info: msgspec.inspect.Type) -> pa.DataType:
    """The Arrow type of a contract field's msgspec type (constraints don't change it)."""
    if isinstance(info, msgspec.inspect.Metadata):
        return arrow_type(info.type)
    simple: dict[type[Any], pa.DataType] = {
        msgspec.inspect.StrType: pa.string(),
        msgspec.inspect.FloatType: pa.float64(),
        msgspec.inspect.IntType: pa.int64(),
        msgspec.inspect.BoolType: pa.bool_(),
        msgspec.inspect.DateTimeType: TIMESTAMP,
        msgspec.inspect.DateType: pa.date32(),
    }
    found = simple.get(type(info))
    if found is not None:
        return found
    if isinstance(info, msgspec.inspect.LiteralType) and all(
        isinstance(v, str) for v in info.values
    ):
        return pa.string()
    raise UnsupportedFieldType(f"no bronze column type for {info!r}")


def data_fields(contract: Contract) -> list[pa.Field]:
    """The contract's columns: each field as typed, a PII field as its pseudonym (text) plus
    the part the contract keeps."""
    info = msgspec.inspect.type_info(contract.data)
    assert isinstance(info, msgspec.inspect.StructType)
    fields: list[pa.Field] = []
    for field in info.fields:
        pii = contract.pii.get(field.name)
        if pii is None:
            fields.append(pa.field(field.name, arrow_type(field.type), nullable=not field.required))
            continue
        fields.append(pa.field(field.name, pa.string(), nullable=not field.required))
        if pii.kept_as is not None:
            fields.append(pa.field(pii.kept_as, pa.string(), nullable=not field.required))
    return fields


def bronze_schema(contract: Contract) -> pa.Schema:
    """The bronze table of a contract: lineage, data fields, extras, event date, and the
    score for a contract a model scores."""
    metadata = {
        "contract": contract.event_type,
        "contract_version": str(contract.version),
        "entity_key": contract.entity_key,
        "pii": ",".join(sorted(contract.pii)),
    }
    scoring = SCORING if contract.scored_by else ()
    return pa.schema([*LINEAGE, *data_fields(contract), *TRAILER, *scoring], metadata=metadata)


def event_date(moment: dt.datetime) -> dt.date:
    """The partition value of a moment: its UTC date."""
    return moment.astimezone(dt.UTC).date()
