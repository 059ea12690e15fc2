"""The events and ingest triggers, called as the worker would, on a platform of temp folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from deltalake import DeltaTable

import functions.events as events_function
import functions.ingest as ingest_function
from shared.bootstrap import Platform, bootstrap
from shared.config import load_settings
from shared.events.ingest import MissingHubPosition
from shared.events.pseudonymize import Pseudonymizer
from tests.eventdata import card, encoded, payment, protected_data
from tests.functions import async_blueprint_function

pytestmark = pytest.mark.unit

KEY = Pseudonymizer(b"k" * 32)


@pytest.fixture
def services(tmp_path: Path, installed: Callable[[Platform], Platform]) -> Platform:
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "PSEUDONYM_KEY": "k" * 32})
    return installed(bootstrap(settings))


def user_function(module: Any) -> Any:
    return next(iter(module.bp._function_builders)).build().get_user_function()


def request(body: bytes, content_type: str) -> func.HttpRequest:
    return func.HttpRequest(
        method="POST",
        url="http://localhost/api/events",
        headers={"content-type": content_type, "x-forwarded-for": "127.0.0.1"},
        body=body,
    )


async def test_post_events_answers_202_with_the_rejections(services: Platform) -> None:
    body = json.dumps([payment(1), payment(2, channel="fax")]).encode()
    response = await async_blueprint_function(events_function.bp)(
        request(body, "application/cloudevents-batch+json")
    )
    assert response.status_code == 202
    assert response.mimetype == "application/json"
    answer = json.loads(response.get_body())
    assert answer["accepted"] == 1 and answer["rejected"][0]["index"] == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [(b"{", "application/cloudevents+json", 400), (b"{}", "text/csv", 415)],
)
async def test_post_events_maps_bad_requests(
    services: Platform, body: bytes, content_type: str, status: int
) -> None:
    response = await async_blueprint_function(events_function.bp)(request(body, content_type))
    assert response.status_code == status
    assert json.loads(response.get_body())["error"]


def hub_events(
    bodies: list[bytes], properties: meta.Datum | None = None
) -> list[func.EventHubEvent]:
    context = {
        "FullyQualifiedNamespace": "local",
        "EventHubName": "events",
        "ConsumerGroup": "$Default",
        "PartitionId": "0",
    }
    metadata = {"PartitionContext": meta.Datum(json.dumps(context), "json")}
    if properties is not None:
        metadata["PropertiesArray"] = properties
    return [
        func.EventHubEvent(body=b, trigger_metadata=metadata, sequence_number=i, offset=str(i))
        for i, b in enumerate(bodies)
    ]


def test_ingest_lands_a_batch_once(services: Platform, tmp_path: Path) -> None:
    ingest = user_function(ingest_function)
    batch = hub_events([encoded(payment(n)) for n in range(3)])
    ingest(batch)
    ingest(batch)
    table = DeltaTable(str(tmp_path / "lake" / "bronze" / "payment_transaction"))
    assert table.to_pyarrow_table().num_rows == 3


@pytest.mark.parametrize(
    "properties",
    [
        json.dumps([{"protection": "pseudonymized"}]),  # one entry for two events
        json.dumps({"protection": "pseudonymized"}),  # not a list
        json.dumps([None, {"protection": "something else"}]),
    ],
)
def test_ingest_takes_events_as_raw_unless_their_properties_say_protected(
    services: Platform, tmp_path: Path, properties: str
) -> None:
    raw = [payment(n) for n in range(2)]
    user_function(ingest_function)(
        hub_events([encoded(e) for e in raw], meta.Datum(properties, "json"))
    )
    rows = DeltaTable(str(tmp_path / "lake" / "bronze" / "payment_transaction")).to_pyarrow_table()
    assert rows.column("card_number").to_pylist() == [KEY.pseudonym(card(n)) for n in range(2)]


def test_a_protected_event_is_not_hashed_again(services: Platform, tmp_path: Path) -> None:
    event = payment(1)
    protected = encoded({**event, "data": protected_data(event)})
    marked = meta.Datum(json.dumps([{"protection": "pseudonymized"}]), "json")
    user_function(ingest_function)(hub_events([protected], marked))
    rows = DeltaTable(str(tmp_path / "lake" / "bronze" / "payment_transaction")).to_pyarrow_table()
    assert rows.column("card_number").to_pylist() == [KEY.pseudonym(card(1))]


def test_ingest_refuses_a_batch_without_its_position(services: Platform) -> None:
    event = func.EventHubEvent(body=encoded(payment()), sequence_number=0)
    with pytest.raises(MissingHubPosition):
        user_function(ingest_function)([event])
