"""The lake on `abfss://` (ADLS Gen2), on Azurite: health, landing and exactly-once."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import requests

from shared.events.envelope import EventDecoder
from shared.events.ingest import Ingestor
from shared.events.pseudonymize import Pseudonymizer
from shared.lakehouse.access import StaticAccess, emulator_options
from shared.lakehouse.bronze import BronzeWriter
from shared.lakehouse.bronze_rows import Position
from tests.conftest import StartDevhost
from tests.eventdata import encoded, messages, payment, telemetry
from tests.integration.azurite import Azurite
from tests.integration.ingest_helpers import bronze_rows, eventually, landed_ids, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture
def lake(azurite: Azurite) -> str:
    container = f"lake{uuid.uuid4().hex[:12]}"
    azurite.create_container(container)
    return f"abfss://{container}@devstoreaccount1.dfs.core.windows.net/platform"


def test_the_writer_lands_exactly_once_on_adls(azurite: Azurite, lake: str) -> None:
    options = emulator_options(azurite.blob_endpoint)
    writer = BronzeWriter(lake, StaticAccess(options))
    ingestor = Ingestor(EventDecoder(), Pseudonymizer(b"k" * 32), writer)
    batch = messages([encoded(payment(n)) for n in range(50)] + [b"oops"])
    position = Position("local", "events", "$default", 0)
    first = ingestor.ingest(position, batch)
    assert first.landed == {"payment_transaction": 50, "deadletter": 1}
    again = Ingestor(
        EventDecoder(), Pseudonymizer(b"k" * 32), BronzeWriter(lake, StaticAccess(options))
    )
    assert sum(again.ingest(position, batch).landed.values()) == 0
    assert len(bronze_rows(lake, "payment_transaction", options)) == 50
    assert len(bronze_rows(lake, "deadletter", options)) == 1


def test_events_posted_to_the_devhost_land_on_adls(
    start_devhost: StartDevhost, tmp_path: Path, azurite: Azurite, lake: str
) -> None:
    app = start_platform(
        start_devhost,
        tmp_path / "data",
        env={"LAKE_URI": lake, "LAKE_EMULATOR_ENDPOINT": azurite.blob_endpoint},
    )
    health = requests.get(app.host.url("/api/health"), timeout=30).json()
    assert health["backends"]["lake"]["adapter"] == "azure"
    assert health["backends"]["lake"]["ready"] is True
    events = [payment(n) for n in range(20)] + [telemetry(n) for n in range(5)]
    assert app.post(events).json()["accepted"] == 25
    options = emulator_options(azurite.blob_endpoint)
    expected = sorted(e["id"] for e in events)
    eventually(lambda: sorted(landed_ids(lake, options)) == expected, what="events on Azurite")
    assert not (tmp_path / "data" / "lake").exists()


def test_two_compactions_at_once_on_adls_keep_every_row_once(azurite: Azurite, lake: str) -> None:
    options = emulator_options(azurite.blob_endpoint)
    writers = [BronzeWriter(lake, StaticAccess(options)) for _ in range(2)]
    ingestor = Ingestor(EventDecoder(), Pseudonymizer(b"k" * 32), writers[0])
    for batch in range(6):
        numbers = range(batch * 5, batch * 5 + 5)
        position = Position("local", "events", "$default", 0)
        ingestor.ingest(position, messages([encoded(payment(n)) for n in numbers], batch * 5))
    start = threading.Barrier(2)
    results: list[object] = []

    def compact(writer: BronzeWriter) -> None:
        start.wait(30)
        results.append(writer.compact("payment_transaction"))

    threads = [threading.Thread(target=compact, args=(writer,)) for writer in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 2, results
    assert len(bronze_rows(lake, "payment_transaction", options)) == 30
