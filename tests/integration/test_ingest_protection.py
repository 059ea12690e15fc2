"""Card numbers posted over HTTP are pseudonymized at the intake, before the hub: no file under
the data dir (event log included) and no log line holds one, in any writing it was posted in."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from embedded.eventlog.log import EventLog, event_log_path
from shared.config import DEVELOPMENT_PSEUDONYM_KEY
from shared.events.pseudonymize import Pseudonymizer
from tests.conftest import StartDevhost
from tests.eventdata import card, encoded, payment, telemetry
from tests.integration.ingest_helpers import bronze_rows, eventually, start_platform

pytestmark = pytest.mark.integration

KEY = Pseudonymizer(DEVELOPMENT_PSEUDONYM_KEY.encode())


def writings(pan: str) -> list[bytes]:
    groups = [pan[i : i + 4] for i in range(0, len(pan), 4)]
    return [pan.encode(), " ".join(groups).encode(), ".".join(groups).encode()]


def test_no_card_number_posted_over_http_reaches_a_file_or_a_log(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    app = start_platform(start_devhost, data_dir)
    pans = [card(500 + n) for n in range(8)]
    events = [payment(500 + n) for n in range(3)]  # in card_number only
    events[1].update(id=pans[3], subject=" ".join(pans[4][i : i + 4] for i in (0, 4, 8, 12)))
    events[2].update(source=f"/shops/{pans[5]}", traceid=f"{pans[6]}-1")
    events[2]["data"].update(merchant_id=f"m-{pans[7]}", note=f"{pans[0]} 1/27")
    body = json.dumps(events).replace('"tx-502"', '"tx-502", "ref": 4011777766665550.5')
    response = app.post_body(body.encode(), {"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 202 and response.json()["accepted"] == 3, response.text
    # A device writes straight to the hub: ingest protects it.
    device = payment(600)
    device.update(id=card(601))
    with EventLog(event_log_path(data_dir)) as log:
        log.append_batch("events", [(encoded(device), None, None)])
    lake = str(data_dir / "lake")
    eventually(lambda: len(bronze_rows(lake, "payment_transaction")) == 4, what="4 payments")
    rows = {r["transaction_id"]: r for r in bronze_rows(lake, "payment_transaction")}
    for event in [*events, device]:  # hashed once, at the intake or at ingest, never twice
        data = event["data"]
        row = rows[data["transaction_id"]]
        assert row["card_number"] == KEY.pseudonym(data["card_number"])
        assert row["card_last4"] == data["card_number"][-4:]
    assert rows["tx-501"]["event_id"] == "pseudonym:" + KEY.pseudonym(pans[3])
    app.host.stop()
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name.startswith("events") or "eventhubs" in str(p) for p in files)
    posted = [*pans, "4011777766665550", *(card(500 + n) for n in range(3))]
    leaks = []
    for path in files:
        content = path.read_bytes()
        searched = posted
        if path.suffix == ".parquet":
            content += json.dumps(pq.read_table(path).to_pylist(), default=str).encode()
        if "eventhubs" not in path.parts:  # the hub keeps what the device sent, as in Azure
            searched = [*posted, card(600), card(601)]
        for pan in searched:
            if any(written in content for written in writings(pan)):
                leaks.append((str(path.relative_to(data_dir)), pan))
    assert leaks == []
    output = app.host.output()
    assert not [pan for pan in pans if any(w.decode() in output for w in writings(pan))]


def test_the_data_dir_and_everything_in_it_is_for_its_owner_only(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)  # made by an older version, or by hand
    app = start_platform(start_devhost, data_dir)
    assert app.post([payment(1), telemetry(1)]).json()["accepted"] == 2
    lake = str(data_dir / "lake")
    eventually(lambda: len(bronze_rows(lake, "iot_telemetry")) == 1, what="the events landed")
    app.host.stop()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    paths = list(data_dir.rglob("*"))
    assert any(p.suffix == ".parquet" for p in paths) and any("eventhubs" in p.parts for p in paths)
    loose = [
        (str(p.relative_to(data_dir)), oct(stat.S_IMODE(p.stat().st_mode)))
        for p in paths
        if p.stat().st_mode & 0o077
    ]
    assert loose == []
