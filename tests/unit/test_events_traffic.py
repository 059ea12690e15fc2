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
from shared.events.contracts import FRAUD_REASON_CODES
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
    labelled = list(itertools.islice(Traffic(2).events(simulated_clock(START, 0.2)), 60_000))
    types = Counter(decoder.decode(json.dumps(e).encode()).contract.event_type for e in labelled)
    assert types["payment.chargeback"] > 0 and types["device.failure"] > 0


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


def _by_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == event_type]


def _at(event: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(event["time"])


def test_chargebacks_follow_fraud_days_later_and_some_disputes_follow_legit_payments() -> None:
    events = list(itertools.islice(Traffic(3).events(simulated_clock(START, 1.0)), 4 * 86_400))
    payments = {e["data"]["transaction_id"]: e for e in _by_type(events, "payment.transaction")}
    chargebacks = _by_type(events, "payment.chargeback")
    truth = Counter(payments[c["data"]["transaction_id"]]["simlabel"] for c in chargebacks)
    assert truth["legit"] > 0 and sum(truth.values()) - truth["legit"] > 20 * truth["legit"]
    for chargeback in chargebacks:
        data, paid = chargeback["data"], payments[chargeback["data"]["transaction_id"]]
        assert data["account_id"] == paid["data"]["account_id"]
        assert data["reported_at"] == chargeback["time"]
        waited = _at(chargeback) - _at(paid)
        assert dt.timedelta(hours=12) <= waited <= dt.timedelta(days=14, seconds=1)
        fraud = paid["simlabel"] != "legit"
        assert (data["reason_code"] in FRAUD_REASON_CODES) == fraud
    fraudulent = sum(1 for p in payments.values() if p["simlabel"] != "legit")
    assert len(chargebacks) < fraudulent  # not every fraud is disputed, nor yet


def test_failures_are_reported_after_they_happen() -> None:
    traffic = Traffic(4, mix=(0.0, 1.0, 0.0), label_delay_scale=0.5)
    events = list(itertools.islice(traffic.events(simulated_clock(START, 1.0)), 40_000))
    readings: dict[str, list[dict[str, Any]]] = {}
    for event in _by_type(events, "iot.telemetry"):
        readings.setdefault(event["data"]["device_id"], []).append(event)
    reports = _by_type(events, "device.failure")
    assert reports
    for report in reports:
        data = report["data"]
        first_failed = next(
            r for r in readings[data["device_id"]] if r["time"] == data["failed_at"]
        )
        assert first_failed["simlabel"] == "failed" and first_failed["data"]["rpm"] == 0.0
        waited = _at(report) - dt.datetime.fromisoformat(data["failed_at"])
        assert dt.timedelta(minutes=2.5) <= waited <= dt.timedelta(minutes=61)


def test_backfill_prints_history_up_to_now_with_labels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert simulate(["--backfill-days", "2", "--backfill-rate", "0.5", "--print", "200000"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    now = dt.datetime.now(dt.UTC)
    times = [_at(e) for e in events]
    assert (
        now - dt.timedelta(days=2, minutes=1)
        <= times[0]
        <= now - dt.timedelta(days=2) + (dt.timedelta(minutes=1))
    )
    assert max(times) < now and len(events) == pytest.approx(2 * 86_400 * 0.5, abs=2)
    assert {"payment.chargeback", "device.failure"} <= {e["type"] for e in events}
    decoder = EventDecoder()
    for event in events[::97]:
        decoder.decode(json.dumps(event).encode())


@pytest.mark.parametrize(
    "arguments",
    [
        ["--backfill-days", "0"],
        ["--backfill-days", "400"],
        ["--backfill-days", "1", "--backfill-rate", "0"],
        ["--backfill-days", "1", "--start", "2024-01-01T00:00:00Z"],
        ["--label-delay-scale", "0"],
    ],
)
def test_bad_backfill_arguments_are_refused(arguments: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        simulate(arguments)
    assert exited.value.code == 2
