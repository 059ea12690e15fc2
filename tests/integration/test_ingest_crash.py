"""SIGKILL the devhost while events stream in; after a restart every accepted event (202) is
in bronze exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import StartDevhost
from tests.eventdata import interaction, payment, telemetry
from tests.integration.ingest_helpers import Platform, eventually, landed_ids, start_platform

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Poster(threading.Thread):
    """Posts batches until the host goes away; remembers the ids of every accepted event."""

    def __init__(self, app: Platform, batch_size: int = 200, max_batches: int = 200) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.accepted: list[str] = []
        self.posted: set[str] = set()
        self.batches = 0

    def run(self) -> None:
        makers = (payment, telemetry, interaction)
        for batch in range(self.max_batches):
            events: list[dict[str, Any]] = [
                makers[i % 3](batch * self.batch_size + i) for i in range(self.batch_size)
            ]
            self.posted.update(e["id"] for e in events)
            try:
                response = self.app.post(events)
            except requests.RequestException:
                return  # the host was killed
            if response.status_code == 202:
                assert response.json()["accepted"] == len(events)
                self.accepted.extend(e["id"] for e in events)
                self.batches += 1


def test_every_accepted_event_lands_once_across_a_crash(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    lake = str(data_dir / "lake")
    app = start_platform(start_devhost, data_dir)
    poster = Poster(app)
    poster.start()
    # Kill while both posting and ingesting are under way.
    eventually(lambda: poster.batches >= 10 and len(landed_ids(lake)) > 0, what="streaming")
    app.host.kill()
    poster.join(30)
    assert not poster.is_alive()
    accepted = set(poster.accepted)
    assert accepted

    start_platform(start_devhost, data_dir)
    eventually(
        lambda: accepted <= set(landed_ids(lake)),
        timeout=120,
        what="every accepted event in bronze after the restart",
    )
    counts = Counter(landed_ids(lake))
    assert [event for event, n in counts.items() if n > 1] == []
    assert set(counts) <= poster.posted
