"""What the Cosmos DB adapter does beyond the conformance suite: throttling with the service's
retry-after, request charges, containers declared elsewhere, and Entra ID tokens on the wire."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo

from embedded.documents.model import (
    ContainerSpec,
    DocumentStoreError,
    InvalidDocument,
    PatchOperation,
    Throttled,
)
from shared.documents.cosmos import CONCURRENCY, CosmosDatabase
from tests.fakes.cosmos import TOKEN, FakeCosmos, FakeCredential

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]
ALERTS = ContainerSpec("alerts", "/accountId", 3600)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeCosmos]:
    with FakeCosmos(tmp_path / "cosmos.sqlite3", tmp_path / "tls") as server:
        server.declare(ALERTS)
        yield server


def database(fake: FakeCosmos, **options: Any) -> CosmosDatabase:
    return CosmosDatabase(fake.url, "platform", FakeCredential(), **options)


def test_throttling_is_retried_after_the_services_retry_after(fake: FakeCosmos) -> None:
    alerts = database(fake).container(ALERTS)
    fake.throttle(3, retry_after_ms=20)
    stored = alerts.upsert({"id": "x", "accountId": "a1"})
    assert stored["id"] == "x" and fake.throttled_requests == 3


def test_throttling_past_the_retries_is_a_distinct_error(fake: FakeCosmos) -> None:
    alerts = database(fake, throttle_retries=2).container(ALERTS)
    fake.throttle(50, retry_after_ms=250)
    with pytest.raises(Throttled, match="throttling") as raised:
        alerts.patch("x", "a1", [PatchOperation("incr", "/n", 1)])
    assert raised.value.retry_after_s == 0.25
    assert fake.throttled_requests == 3  # the first try and two retries, then it gives up


def test_request_charges_are_recorded_per_container_and_operation(fake: FakeCosmos) -> None:
    documents = database(fake)
    alerts = documents.container(ALERTS)
    alerts.create({"id": "x", "accountId": "a1"})
    alerts.read("x", "a1")
    alerts.read("x", "a1")
    charges = documents.charges.snapshot()
    assert charges[("alerts", "read")].requests == 2
    assert charges[("alerts", "read")].request_units == pytest.approx(3.0)
    assert documents.charges.total() == pytest.approx(4.5)


def test_containers_are_declared_by_the_deployment_not_created(fake: FakeCosmos) -> None:
    documents = database(fake)
    with pytest.raises(InvalidDocument, match="declare it in Bicep"):
        documents.container(ContainerSpec("missing", "/id"))
    with pytest.raises(InvalidDocument, match="partition key /accountId, not /deviceId"):
        documents.container(ContainerSpec("alerts", "/deviceId"))


def test_requests_carry_an_entra_id_token_and_a_wrong_one_is_refused(fake: FakeCosmos) -> None:
    database(fake).container(ALERTS).upsert({"id": "x", "accountId": "a1"})
    assert fake.server.requests
    assert all(
        unquote(r.headers["authorization"]) == f"type=aad&ver=1.0&sig={TOKEN}"
        for r in fake.server.requests
    )

    class WrongToken(FakeCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("stolen", 2**31)

        def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
            return AccessTokenInfo("stolen", 2**31)

    with pytest.raises(DocumentStoreError, match="401"):
        CosmosDatabase(fake.url, "platform", WrongToken()).container(ALERTS)


def test_upsert_many_sends_its_requests_concurrently_and_answers_in_order(
    fake: FakeCosmos,
) -> None:
    """Eight upserts meet at a barrier inside the SDK's request: sent one at a time, the first
    would wait alone and break it."""
    documents = database(fake)
    alerts = documents.container(ALERTS)
    barrier = threading.Barrier(CONCURRENCY, timeout=20)
    send = alerts.proxy.upsert_item

    def meeting(body: Any, **options: Any) -> Any:
        barrier.wait()
        return send(body, **options)

    alerts.proxy.upsert_item = meeting  # type: ignore[method-assign]
    written = alerts.upsert_many(
        [{"id": f"d{n}", "accountId": f"a{n}"} for n in range(CONCURRENCY)]
    )
    assert [d["id"] for d in written] == [f"d{n}" for n in range(CONCURRENCY)]
    assert alerts.read("d7", "a7")["id"] == "d7"
    documents.close()


def test_a_failed_upsert_of_many_is_raised_after_the_others_ended(fake: FakeCosmos) -> None:
    alerts = database(fake).container(ALERTS)
    many = [{"id": f"d{n}", "accountId": "a1"} for n in range(20)]
    many[5] = {"id": "bad/id", "accountId": "a1"}
    with pytest.raises(InvalidDocument, match="bad/id"):
        alerts.upsert_many(many)
    assert alerts.read("d19", "a1")["id"] == "d19"  # the rest were written
