"""Alerts: one per event across redeliveries, announced on the hub (again only when a crash
left one unannounced), searched newest first; the route refuses what it cannot use."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from embedded.documents.store import DocumentStore
from functions import alerts as alert_functions
from shared.events.publisher import OutgoingEvent
from shared.models.alerts import ALERTS_CONTAINER, ALERTS_HUB, AlertBook, AlertCandidate
from tests.functions import blueprint_function

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
LOOPBACK = {"x-forwarded-for": "127.0.0.1"}


class Hub:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def publish_now(self, hub: str, events: Sequence[OutgoingEvent]) -> None:
        assert hub == ALERTS_HUB
        if self.fail:
            self.fail -= 1
            raise OSError("the hub is down")
        self.sent.extend(json.loads(e.body) for e in events)


def candidate(event_id: str, entity: str = "acct-1", score: float = 0.9) -> AlertCandidate:
    return AlertCandidate(
        model="fraud",
        version=1,
        entity=entity,
        score=score,
        threshold=0.5,
        event_id=event_id,
        event_time="2026-12-07T11:59:00Z",
        top_features=[{"feature": "count_10m", "value": 9.0, "contribution": 1.5}],
    )


@pytest.fixture
def book(tmp_path: Path) -> tuple[AlertBook, Hub]:
    hub = Hub()
    store = DocumentStore(tmp_path / "documents.sqlite3")
    return AlertBook(store.container(ALERTS_CONTAINER), hub), hub


def test_an_event_raises_one_alert_however_often_it_comes(book: tuple[AlertBook, Hub]) -> None:
    alerts, hub = book
    assert alerts.raise_alerts([candidate("e1"), candidate("e2", "acct-2")], NOW) == 2
    assert alerts.raise_alerts([candidate("e1")], NOW + dt.timedelta(seconds=5)) == 0
    assert [e["data"]["event_id"] for e in hub.sent] == ["e1", "e2"]
    event = hub.sent[0]
    assert event["type"] == "platform.alert" and event["subject"] == "acct-1"
    assert event["data"]["top_features"][0]["feature"] == "count_10m"
    found, _ = alerts.search()
    assert {a["event_id"] for a in found} == {"e1", "e2"} and all(a["published"] for a in found)


def test_an_alert_left_unannounced_by_a_crash_is_announced_on_redelivery(
    book: tuple[AlertBook, Hub],
) -> None:
    alerts, hub = book
    hub.fail = 1
    with pytest.raises(OSError):
        alerts.raise_alerts([candidate("e1")], NOW)
    assert hub.sent == []
    assert alerts.raise_alerts([candidate("e1")], NOW) == 0  # the document was there already
    assert [e["id"] for e in hub.sent] == [alerts.search()[0][0]["id"]]


def test_search_filters_and_pages_newest_first(book: tuple[AlertBook, Hub]) -> None:
    alerts, _ = book
    for n in range(5):
        alerts.raise_alerts([candidate(f"e{n}", f"acct-{n % 2}")], NOW + dt.timedelta(minutes=n))
    first, more = alerts.search(top=2)
    assert [a["event_id"] for a in first] == ["e4", "e3"] and more
    rest, _ = alerts.search(top=10, continuation=more)
    assert [a["event_id"] for a in rest] == ["e2", "e1", "e0"]
    mine, _ = alerts.search(entity="acct-1")
    assert [a["event_id"] for a in mine] == ["e3", "e1"]
    recent, _ = alerts.search(since=NOW + dt.timedelta(minutes=2, microseconds=1))
    assert [a["event_id"] for a in recent] == ["e4", "e3"]
    assert alerts.search(type="maintenance")[0] == []


def _list(params: dict[str, str]) -> func.HttpResponse:
    request = func.HttpRequest("GET", "/api/alerts", body=b"", headers=LOOPBACK, params=params)
    response: func.HttpResponse = blueprint_function(alert_functions.bp, "list_alerts")(request)
    return response


def test_the_route_lists_alerts(platform_env: Path) -> None:
    answer = _list({})
    assert answer.status_code == 200
    assert json.loads(answer.get_body()) == {"alerts": [], "continuation": None}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"type": "churn"}, "type"),
        ({"entity": "x" * 129}, "entity"),
        ({"entity": ""}, "entity"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-07T10:00:00"}, "since"),
        ({"since": "2026-02-30T10:00:00Z"}, "since"),
        ({"top": "0"}, "top"),
        ({"top": "501"}, "top"),
        ({"top": "9" * 40}, "top"),
        ({"continuation": "c" * 3000}, "continuation"),
        ({"continuation": "not-a-token"}, "continuation"),
    ],
)
def test_bad_parameters_are_refused_naming_them(
    platform_env: Path, params: dict[str, str], named: str
) -> None:
    answer = _list(params)
    assert answer.status_code == 400
    assert named in json.loads(answer.get_body())["error"]
