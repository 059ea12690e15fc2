"""The traffic simulator: valid events of every contract, its patterns, and its determinism."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from typing import Any

import pytest

from benchmarks.simulate import main as simulate
from benchmarks.traffic import Traffic, simulated_clock
from shared.events.envelope import EventDecoder

pytestmark = pytest.mark.unit

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def sample(count: int = 4000, seed: int = 5, **options: Any) -> list[dict[str, Any]]:
    traffic = Traffic(seed, fraud_rate=0.05, **options)
    return list(itertools.islice(traffic.events(simulated_clock(START, 100.0)), count))


def test_every_event_passes_its_contract() -> None:
    decoder = EventDecoder()
    events = sample()
    types = Counter(decoder.decode(json.dumps(e).encode()).contract.event_type for e in events)
    assert set(types) == {"payment.transaction", "iot.telemetry", "app.interaction"}


def test_the_seed_fixes_the_stream() -> None:
    assert sample(500, seed=9) == sample(500, seed=9)
    assert sample(500, seed=9) != sample(500, seed=10)


def test_fraud_patterns_are_there_and_distinguishable() -> None:
    payments = [e for e in sample(20_000) if e["type"] == "payment.transaction"]
    by_label: dict[str, list[dict[str, Any]]] = {}
    for event in payments:
        by_label.setdefault(event["simlabel"], []).append(event["data"])
    assert {"legit", "burst", "unusual_country", "card_testing"} <= set(by_label)
    testing = by_label["card_testing"]
    assert all(d["amount"] <= 2.0 and d["channel"] == "ecommerce" for d in testing)
    legit_countries = {d["country"] for d in by_label["legit"]}
    assert legit_countries.isdisjoint(d["country"] for d in by_label["unusual_country"])


def test_telemetry_drifts_before_a_failure() -> None:
    readings: dict[str, list[dict[str, Any]]] = {}
    for event in sample(60_000, mix=(0.0, 1.0, 0.0)):
        readings.setdefault(event["data"]["device_id"], []).append(event)
    drifts = 0
    for series in readings.values():
        labels = [e["simlabel"] for e in series]
        if "failed" not in labels:
            continue
        failed_at = labels.index("failed")
        before = [e["data"]["vibration_mm_s"] for e in series[:failed_at]]
        assert labels[failed_at - 1] == "degrading"
        assert series[failed_at]["data"]["rpm"] == 0.0
        drifts += before[-1] > 1.5 * before[0]
    assert drifts > 0


def test_interactions_follow_affinities() -> None:
    labels = Counter(e["simlabel"] for e in sample(10_000, mix=(0.0, 0.0, 1.0)))
    assert labels["affinity"] > labels["browse"] * 0.5


def test_print_mode_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate(["--print", "5", "--seed", "3", "--start", "2024-05-01T00:00:00Z"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert json.loads(lines[0])["time"] == "2024-05-01T00:00:00Z"
