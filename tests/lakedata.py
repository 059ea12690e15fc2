"""Bronze test data in the schema ingestion lands it (`shared.lakehouse.bronze_schema`)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from embedded.documents.store import DocumentStore
from shared.events.contracts import ContractRegistry
from shared.lakehouse.bronze_schema import DEADLETTER_SCHEMA
from shared.lakehouse.bronze_schema import bronze_schema as contract_bronze_schema
from shared.pipeline.run_ledger import DocumentRunLedger
from shared.pipeline.state import DocumentStateStore

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
_sequence = itertools.count(1)

_CONTRACTS = ContractRegistry()


def bronze_schema(event_type: str) -> pa.Schema:
    """The bronze schema ingestion writes for this type (`shared.lakehouse.bronze_schema`)."""
    contract = _CONTRACTS.get(event_type)
    assert contract is not None, event_type
    return contract_bronze_schema(contract)


def event(
    event_type: str,
    event_id: str,
    event_time: dt.datetime,
    *,
    source: str = "/devices/test",
    lag: dt.timedelta = dt.timedelta(seconds=2),
    **fields: Any,
) -> dict[str, Any]:
    """One bronze row; `lag` separates the hub's enqueued time from the landing time."""
    enqueued = event_time + dt.timedelta(milliseconds=500)
    return {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": 1,
        "source": source,
        "subject": None,
        "event_time": event_time,
        "enqueued_time": enqueued,
        "ingested_at": enqueued + lag,
        "partition": 0,
        "sequence_number": next(_sequence),
        "extras": json.dumps(fields.pop("extras", {})),
        "extensions": "{}",
        "event_date": event_time.date(),
        **fields,
    }


def payment(
    event_id: str,
    account_id: str,
    amount: float,
    event_time: dt.datetime,
    *,
    merchant_id: str = "m-1",
    currency: str = "EUR",
    channel: str = "pos",
    **extra: Any,
) -> dict[str, Any]:
    return event(
        "payment.transaction",
        event_id,
        event_time,
        transaction_id=f"t-{event_id}",
        account_id=account_id,
        card_number="hmac:" + "ab" * 16,
        card_last4="4242",
        amount=amount,
        currency=currency,
        merchant_id=merchant_id,
        merchant_category="5411",
        country="NL",
        channel=channel,
        **extra,
    )


def telemetry(
    event_id: str, device_id: str, event_time: dt.datetime, **values: Any
) -> dict[str, Any]:
    readings = {"temperature_c": 40.0, "vibration_mm_s": 2.0, "pressure_kpa": 101.0, "rpm": 1500.0}
    return event(
        "iot.telemetry", event_id, event_time, device_id=device_id, **{**readings, **values}
    )


def interaction(
    event_id: str, user_id: str, item_id: str, action: str, session_id: str, event_time: dt.datetime
) -> dict[str, Any]:
    return event(
        "app.interaction",
        event_id,
        event_time,
        user_id=user_id,
        item_id=item_id,
        action=action,
        session_id=session_id,
    )


def land(lake: Path | str, event_type: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows to `lake/bronze/<type>` as one commit, partitioned by event date."""
    table = pa.Table.from_pylist(list(rows), schema=bronze_schema(event_type))
    write_deltalake(
        f"{lake}/bronze/{event_type.replace('.', '_')}",
        table,
        mode="append",
        partition_by=["event_date"],
    )


def land_deadletters(lake: Path | str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append dead-letter rows in ingestion's schema; give at least `event_type`, `ingested_at`."""
    defaults = {
        "reason": "contract",
        "error": "data.amount must be >= 0",
        "payload": "{}",
        "payload_bytes": 2,
        "namespace": "local",
        "hub": "events",
        "consumer_group": "$Default",
        "partition": 0,
        "offset": None,
    }
    full = []
    for row in rows:
        landed = row["ingested_at"]
        full.append(
            {
                **defaults,
                "sequence_number": next(_sequence),
                "enqueued_time": landed - dt.timedelta(seconds=1),
                "event_date": landed.date(),
                **row,
            }
        )
    write_deltalake(
        f"{lake}/bronze/deadletter",
        pa.Table.from_pylist(full, schema=DEADLETTER_SCHEMA),
        mode="append",
        partition_by=["event_date"],
    )


def state_at(path: Path) -> DocumentStateStore:
    """Pipeline state in an embedded document store at `path`."""
    return DocumentStateStore.open(DocumentStore(path))


def ledger_at(path: Path) -> DocumentRunLedger:
    """A run ledger in an embedded document store at `path`."""
    return DocumentRunLedger.open(DocumentStore(path))


def medallion_for(lake_root: Path, engine: Any = None, *, chunk_rows: int = 250_000) -> Any:
    """A MedallionPipeline over a test lake, with its state in an embedded document store
    beside it, and DuckDB unless told."""
    from shared.batch.duckdb_engine import DuckDBEngine
    from shared.pipeline.lake import Lake
    from shared.pipeline.service import MedallionPipeline

    state = state_at(lake_root.parent / f"{lake_root.name}-state.sqlite")
    return MedallionPipeline.build(
        Lake(str(lake_root)), state, engine or DuckDBEngine(threads=1), chunk_rows=chunk_rows
    )


def read(lake_root: Path, layer: str, table: str) -> list[dict[str, Any]]:
    """Every row of a Delta table, as dicts."""
    from deltalake import DeltaTable

    return DeltaTable(f"{lake_root}/{layer}/{table}").to_pyarrow_table().to_pylist()


def version(lake_root: Path, layer: str, table: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(f"{lake_root}/{layer}/{table}").version()
