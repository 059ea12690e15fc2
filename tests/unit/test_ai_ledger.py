"""The usage ledger: one document per request with its tokens, cost and latencies and never any
text, summed per app and since a time, page by page; and the price table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from embedded.documents.store import DocumentStore
from shared.ai import ledger as ledger_module
from shared.ai.ledger import (
    USAGE_CONTAINER,
    InvalidUsage,
    UsageEntry,
    UsageLedger,
    UsageTotals,
)
from shared.ai.prices import PRICES, Price, cost_usd, price_of
from tests.fakes.cosmos import container_on

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

T0 = dt.datetime(2025, 5, 1, 12, tzinfo=dt.UTC)
NOW = (T0 + dt.timedelta(hours=3)).timestamp()


def entry(request_id: str, app: str = "app-00000000000000aa", **fields: Any) -> UsageEntry:
    values: dict[str, Any] = {
        "outcome": "ok",
        "deployment": "gpt4o-east",
        "model": "gpt-4o-2024-08-06",
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "cached_prompt_tokens": 200,
        "latency_queue_ms": 1.5,
        "latency_first_byte_ms": 320.25,
        "latency_total_ms": 2100.0,
        "stream": True,
        "at": T0.timestamp(),
    }
    values.update(fields)
    return UsageEntry(request_id, app, **values)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DocumentStore]:
    found = DocumentStore(tmp_path / "documents" / "platform.sqlite3")
    yield found
    found.close()


@pytest.fixture
def ledger(store: DocumentStore) -> UsageLedger:
    return UsageLedger(store.container(USAGE_CONTAINER), clock=lambda: NOW)


@pytest.mark.parametrize("adapter", ["embedded", "cosmos"])
def test_an_entry_round_trips_and_sums(adapter: str, tmp_path: Path) -> None:
    with container_on(adapter, USAGE_CONTAINER, tmp_path) as container:
        ledger = UsageLedger(container, clock=lambda: NOW)
        document = ledger.record(entry("req-1"))
        ledger.record(
            entry(
                "req-2",
                outcome="rate_limited",
                prompt_tokens=0,
                completion_tokens=0,
                cached_prompt_tokens=0,
                deployment=None,
                latency_first_byte_ms=None,
            )
        )
        ledger.record(entry("req-3", app="entra-4f0c6a4e-7d43-4b5e-9d1a-2b1c3d4e5f60"))
        assert {k: v for k, v in document.items() if not k.startswith("_")} == {
            "id": "req-1",
            "app": "app-00000000000000aa",
            "type": "usage",
            "at": "2025-05-01T12:00:00.000000Z",
            "deployment": "gpt4o-east",
            "model": "gpt-4o-2024-08-06",
            "prompt_tokens": 1000,
            "cached_prompt_tokens": 200,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "cost_usd": 0.00725,  # (800 * 2.50 + 200 * 1.25 + 500 * 10.00) / 1e6
            "latency_queue_ms": 1.5,
            "latency_first_byte_ms": 320.25,
            "latency_total_ms": 2100.0,
            "outcome": "ok",
            "stream": True,
        }
        one = ledger.summary(app="app-00000000000000aa")
        assert one == UsageTotals(2, 1000, 500, 1500, 0.00725, 0, {"ok": 1, "rate_limited": 1})
        every = ledger.summary()
        assert (every.requests, every.total_tokens, every.cost_usd) == (3, 3000, 0.0145)


def test_summaries_are_bounded_in_time(ledger: UsageLedger) -> None:
    for hour in range(4):
        at = (T0 + dt.timedelta(hours=hour)).timestamp()
        ledger.record(entry(f"req-{hour}", at=at))
    since = ledger.summary(since=T0 + dt.timedelta(hours=2))
    assert since.requests == 2
    window = ledger.summary(since=T0 + dt.timedelta(hours=1), until=T0 + dt.timedelta(hours=2))
    assert window.requests == 1
    assert ledger.summary(since=T0 + dt.timedelta(days=1)) == UsageTotals()
    assert ledger.summary().requests == 4
    with pytest.raises(InvalidUsage, match="time zone"):
        ledger.summary(since=dt.datetime(2025, 5, 1))


def test_summaries_page_through_every_entry(
    ledger: UsageLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "PAGE_SIZE", 2)
    for n in range(7):
        ledger.record(entry(f"req-{n}", at=T0.timestamp() + n))
    totals = ledger.summary(app="app-00000000000000aa")
    assert (totals.requests, totals.prompt_tokens) == (7, 7000)
    assert totals.cost_usd == pytest.approx(7 * 0.00725)


def test_a_request_is_recorded_once(ledger: UsageLedger) -> None:
    first = ledger.record(entry("req-1"))
    again = ledger.record(entry("req-1", completion_tokens=9))
    assert again["completion_tokens"] == 500 and again["_etag"] == first["_etag"]
    assert ledger.summary().requests == 1


def test_a_model_without_a_price_is_counted_apart(ledger: UsageLedger) -> None:
    ledger.record(entry("req-1", model="llama3.1:8b"))
    ledger.record(
        entry("req-2", model=None, prompt_tokens=0, completion_tokens=0, cached_prompt_tokens=0)
    )
    totals = ledger.summary()
    assert (totals.requests, totals.unpriced_requests, totals.cost_usd) == (2, 1, 0.0)
    assert totals.to_json()["unpriced_requests"] == 1


def test_no_text_is_ever_kept(store: DocumentStore, ledger: UsageLedger) -> None:
    fields = {f.name for f in dataclasses.fields(UsageEntry)}
    assert fields == {
        "request_id", "app", "outcome", "deployment", "model", "prompt_tokens",
        "completion_tokens", "cached_prompt_tokens", "latency_queue_ms",
        "latency_first_byte_ms", "latency_total_ms", "stream", "at",
    }  # fmt: skip
    secret = "Tell me the launch codes"
    for field in ("model", "deployment", "app"):
        with pytest.raises(InvalidUsage, match=field):
            entry("req-1", **{field: secret})
    with pytest.raises(InvalidUsage, match="request_id"):
        entry(secret)
    ledger.record(entry("req-1"))
    for path in store.path.parent.iterdir():
        assert secret.encode() not in path.read_bytes()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt_tokens": -1}, "prompt_tokens"),
        ({"completion_tokens": True}, "completion_tokens"),
        ({"completion_tokens": 1.5}, "completion_tokens"),
        ({"prompt_tokens": 10**12}, "prompt_tokens"),
        ({"cached_prompt_tokens": 2000}, "cached_prompt_tokens"),
        ({"latency_total_ms": math.nan}, "latency_total_ms"),
        ({"latency_queue_ms": -1}, "latency_queue_ms"),
        ({"latency_first_byte_ms": "fast"}, "latency_first_byte_ms"),
        ({"latency_total_ms": 10**12}, "latency_total_ms"),
        ({"outcome": "great"}, "outcome"),
        ({"stream": "yes"}, "stream"),
        ({"at": math.inf}, "at"),
        ({"at": -5}, "at"),
        ({"model": "x" * 129}, "model"),
        ({"deployment": ""}, "deployment"),
    ],
)
def test_hostile_entries_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidUsage, match=message):
        entry("req-1", **fields)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-35-turbo", "gpt-35-turbo"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-4o-audio-preview", None),
        ("gpt-4-32k", None),
        ("llama3.1:8b", None),
    ],
)
def test_prices_are_found_by_model_and_snapshot(model: str, expected: str | None) -> None:
    assert price_of(model) == (None if expected is None else PRICES[expected])


def test_costs_follow_the_table() -> None:
    assert cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("gpt-4", 1000, 0, cached_prompt_tokens=1000) == pytest.approx(0.03)
    assert cost_usd("unknown", 10, 10) is None
    table = {"house-model": Price(1.0, 0.5, 2.0)}
    assert cost_usd("house-model", 2_000_000, 1_000_000, 1_000_000, table) == pytest.approx(3.5)
