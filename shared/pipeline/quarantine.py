"""Rows that broke a blocking rule, as kept in `silver/quarantine` with the rule and the row."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence

import pyarrow as pa

from shared.pipeline.quality import RowRule
from shared.pipeline.specs import SilverSpec

QUARANTINE_SCHEMA = pa.schema(
    [
        ("quarantine_key", pa.string()),
        ("event_type", pa.string()),
        ("source", pa.string()),
        ("event_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("rule", pa.string()),
        ("reasons", pa.string()),
        ("row", pa.string()),
        ("run_id", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _json_value(value: object) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)  # Decimal and anything else Delta can hold


def _original(row: dict[str, object], spec: SilverSpec) -> dict[str, object]:
    """The row as it landed: the raw value of each typed column, then the passed-through ones."""
    original = {column: row.get(f"__raw_{column}") for column in spec.typed}
    for name, value in row.items():
        if not name.startswith("__") and name not in original and name != "event_date":
            original[name] = value
    return original


def quarantine_rows(
    spec: SilverSpec,
    rules: Sequence[RowRule],
    bad: pa.Table,
    flags: Sequence[str],
    run_id: str,
    now: dt.datetime,
) -> pa.Table:
    """One quarantine row per bad row: the first blocking rule it broke, all it broke, the row."""
    records = []
    for row in bad.to_pylist():
        broken = [rule.name for rule, flag in zip(rules, flags, strict=True) if row[flag]]
        blocking = [
            rule.name
            for rule, flag in zip(rules, flags, strict=True)
            if row[flag] and rule.blocking
        ]
        document = json.dumps(_original(row, spec), default=_json_value, sort_keys=True)
        identity = "\n".join([spec.event_type, str(row["source"]), str(row["event_id"]), document])
        records.append(
            {
                "quarantine_key": hashlib.sha256(identity.encode()).hexdigest(),
                "event_type": spec.event_type,
                "source": row["source"],
                "event_id": row["event_id"],
                "event_time": row["event_time"],
                "rule": blocking[0],
                "reasons": ", ".join(broken),
                "row": document,
                "run_id": run_id,
                "quarantined_at": now,
            }
        )
    return pa.Table.from_pylist(records, schema=QUARANTINE_SCHEMA)
