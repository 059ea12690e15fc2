"""Landing files for tests: payment records as CSV, JSON, NDJSON or Parquet, and lake readers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from shared.landing.file import LandingFile, landing_file
from tests.eventdata import card

PAYMENT_FIELDS = (
    "transaction_id",
    "account_id",
    "card_number",
    "amount",
    "currency",
    "merchant_id",
    "merchant_category",
    "country",
    "channel",
)
MODIFIED = "2024-05-01T10:00:00+00:00"


def payment_record(n: int, **fields: Any) -> dict[str, Any]:
    """A valid payment record (typed as JSON would have it), with `fields` overriding."""
    record: dict[str, Any] = {
        "transaction_id": f"tx-{n}",
        "account_id": f"acct-{n % 7}",
        "card_number": card(n),
        "amount": 10.5 + n,
        "currency": "EUR",
        "merchant_id": "m-1",
        "merchant_category": "5411",
        "country": "FR",
        "channel": "pos",
    }
    record.update(fields)
    return record


def csv_bytes(records: Iterable[dict[str, Any]], columns: Iterable[str] = PAYMENT_FIELDS) -> bytes:
    """A CSV with a header of `columns`; None and missing values are empty cells."""
    names = list(columns)
    lines = [",".join(names)]
    for record in records:
        cells = ["" if record.get(name) is None else str(record[name]) for name in names]
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def json_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    return ("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n").encode()


def ndjson_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def parquet_bytes(records: list[dict[str, Any]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), sink)
    return sink.getvalue()


def landing(
    data: bytes,
    path: str = "landing/payment.transaction/day1.csv",
    etag: str = '"0x8DC0001"',
    modified: str | None = MODIFIED,
) -> LandingFile:
    """The landing file the blob trigger would describe for these bytes."""
    properties: dict[str, Any] = {"ETag": etag, "ContentLength": len(data)}
    if modified is not None:
        properties["LastModified"] = modified
    uri = f"https://acct.blob.core.windows.net/{path}"
    return landing_file(path, uri, properties, io.BytesIO(data))


def table_rows(lake: Path | str, table: str) -> list[dict[str, Any]]:
    """The rows of `bronze/<table>`, none if it does not exist yet."""
    try:
        return DeltaTable(f"{lake}/bronze/{table}").to_pyarrow_table().to_pylist()
    except TableNotFoundError:
        return []


def files_containing(root: Path, needles: Iterable[str]) -> list[Path]:
    """Every file under `root` holding any of `needles` as bytes (raw card numbers, say)."""
    wanted = [needle.encode() for needle in needles]
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in wanted)
    ]
