"""Running the real platform app in a devhost and reading what landed in its bronze tables."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess

BATCH = "application/cloudevents-batch+json"
TABLES = ("payment_transaction", "iot_telemetry", "app_interaction")


class Platform:
    """The real app on a devhost, with its data dir and function key."""

    def __init__(self, host: DevhostProcess, data_dir: Path) -> None:
        self.host = host
        self.data_dir = data_dir
        keys = json.loads((data_dir / "devhost" / "keys.json").read_text(encoding="utf-8"))
        self.key = keys["hostKeys"]["default"]

    def post(self, events: list[Any], content_type: str = BATCH) -> requests.Response:
        return self.post_body(json.dumps(events).encode(), {"content-type": content_type})

    def post_body(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        """POST raw bytes to /api/events with these headers (and the key)."""
        return requests.post(
            self.host.url("/api/events"),
            data=body,
            headers={**headers, "x-functions-key": self.key},
            timeout=60,
        )


def start_platform(
    start_devhost: StartDevhost, data_dir: Path, env: dict[str, str] | None = None
) -> Platform:
    environment = {"PLATFORM_DATA_DIR": str(data_dir), "DEVHOST_EVENTHUB_POLL_MS": "20"}
    host = start_devhost(PROJECT_ROOT, env={**environment, **(env or {})}, data_dir=data_dir)
    return Platform(host, data_dir)


def bronze_rows(
    lake: str, table: str, storage_options: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    try:
        data = DeltaTable(f"{lake}/bronze/{table}", storage_options=storage_options)
    except TableNotFoundError:
        return []
    return data.to_pyarrow_table().to_pylist()


def landed_ids(lake: str, storage_options: dict[str, str] | None = None) -> list[str]:
    return [
        row["event_id"] for table in TABLES for row in bronze_rows(lake, table, storage_options)
    ]


def eventually(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout} s: {what}")
        time.sleep(0.1)
