"""The audit checkpoints on Azure Blob Storage (Azurite): one blob per closed hour, written once,
read back by the trail's verification; the hour closing writes through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from embedded.audit.checkpoints import Checkpoint
from embedded.documents.store import DocumentStore
from shared.audit.blob_checkpoints import BlobCheckpoints
from shared.audit.events import Actor, AuditEvent
from shared.audit.trail import AUDIT_CONTAINER, DocumentAuditTrail
from shared.audit.verify import verify_all
from shared.lakehouse.access import AZURITE_ACCOUNT, AZURITE_KEY
from tests.integration.azurite import Azurite

pytestmark = pytest.mark.integration

HASH = "ab" * 32


@pytest.fixture
def container(azurite: Azurite, tmp_path: Path) -> Iterator[ContainerClient]:
    name = f"checkpoints-{tmp_path.name.lower().replace('_', '-')[:30]}".rstrip("-")
    azurite.create_container(name)
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={azurite.blob_endpoint}/{AZURITE_ACCOUNT};"
    )
    with ContainerClient.from_connection_string(connection, name) as client:
        yield client


def test_a_checkpoint_is_written_once_and_read_back(container: ContainerClient) -> None:
    checkpoints = BlobCheckpoints(container)
    first = Checkpoint("2026-12-07T12", 41, HASH, "2026-12-07T13:00:00.000001Z")
    assert checkpoints.write(first) is True
    assert checkpoints.write(Checkpoint("2026-12-07T12", 1, "cd" * 32)) is False  # no rewrite
    assert checkpoints.written() == {"2026-12-07T12": first}
    blob = container.download_blob("2026-12-07T12.json").readall()
    assert blob == first.line().encode()


def test_closing_an_hour_writes_its_checkpoint_to_the_container(
    container: ContainerClient, tmp_path: Path
) -> None:
    clock = [1_796_644_800.0]  # 2026-12-07T12:00:00Z
    store = DocumentStore(tmp_path / "platform.sqlite3")
    audit = store.container(AUDIT_CONTAINER)
    checkpoints = BlobCheckpoints(container)
    trail = DocumentAuditTrail(audit, clock=lambda: clock[0], checkpoints=checkpoints)
    event = AuditEvent("request", "success", Actor("user", "oid-1", "tid"), "GET /api/x")
    for _ in range(3):
        trail.append(event)
    clock[0] += 3600  # the next hour's first record closes the one before
    trail.append(event)
    written = checkpoints.written()
    assert list(written) == ["2026-12-07T12"] and written["2026-12-07T12"].last_seq == 3
    assert verify_all(audit, checkpoints) == []
