"""Drift on demand in the traffic simulator: the stream before it untouched, the shifts after it,
events still valid and labelled, and `--drift-at` and its tuning options on the command line."""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import statistics
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.simulate import drift_time, parse_args
from benchmarks.simulate import main as simulate
from benchmarks.traffic import Drift, Traffic, simulated_clock
from shared.events.envelope import EventDecoder
from shared.monitoring.drift import PSI_ACT, psi
from tests.fakes.loopback import LoopbackServer, Request, Response

pytestmark = pytest.mark.unit

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
DRIFT_AT = START + dt.timedelta(seconds=150)
RATE = 100.0  # events per simulated second: 15,000 before the drift, 15,000 after
EVENTS = 30_000
STRONGEST = Drift(amount_factor=100.0, temperature_c=50.0, vibration_factor=100.0)
WEAKEST = Drift(amount_factor=0.1, temperature_c=-50.0, vibration_factor=0.1)


def stream(
    drift: Drift | None = None, *, drift_at: dt.datetime | None = DRIFT_AT
) -> list[dict[str, Any]]:
    traffic = Traffic(5, fraud_rate=0.05, label_delay_scale=0.001, drift_at=drift_at, drift=drift)
    return list(itertools.islice(traffic.events(simulated_clock(START, RATE)), EVENTS))


@pytest.fixture(scope="module")
def plain() -> list[dict[str, Any]]:
    return stream(drift_at=None)


@pytest.fixture(scope="module")
def drifted() -> list[dict[str, Any]]:
    return stream()


def _after(event: dict[str, Any]) -> bool:
    return dt.datetime.fromisoformat(event["time"]) >= DRIFT_AT


def _pairs(
    plain: list[dict[str, Any]], drifted: list[dict[str, Any]], event_type: str
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each event after the drift with the same event of the stream without it."""
    return [
        (before, after)
        for before, after in zip(plain, drifted, strict=True)
        if after["type"] == event_type and _after(after)
    ]


def test_events_before_the_drift_are_those_without_it(
    plain: list[dict[str, Any]], drifted: list[dict[str, Any]]
) -> None:
    cut = next(i for i, event in enumerate(drifted) if _after(event))
    assert cut == int((DRIFT_AT - START).total_seconds() * RATE)
    assert json.dumps(drifted[:cut]) == json.dumps(plain[:cut])
    # After it, the same events (ids, labels, timing); only the shifted values differ.
    for before, after in zip(plain[cut:], drifted[cut:], strict=True):
        assert {k: v for k, v in after.items() if k != "data"} == {
            k: v for k, v in before.items() if k != "data"
        }
        assert after["data"].keys() == before["data"].keys()
        if after["type"] not in ("payment.transaction", "iot.telemetry"):
            assert after["data"] == before["data"]


@pytest.mark.parametrize("drift", [Drift(), Drift(0.5, -20.0, 2.0)], ids=["default", "tuned"])
def test_amounts_and_telemetry_shift_by_the_stated_amounts(
    plain: list[dict[str, Any]], drifted: list[dict[str, Any]], drift: Drift
) -> None:
    if drift != Drift():
        drifted = stream(drift)
    payments = _pairs(plain, drifted, "payment.transaction")
    # Card testing's probes stay tiny; every other amount is multiplied.
    probes = [(b, a) for b, a in payments if a["simlabel"] == "card_testing"]
    assert probes and all(b["data"] == a["data"] for b, a in probes)
    shifted = [
        (b["data"]["amount"], a["data"]["amount"])
        for b, a in payments
        if a["simlabel"] != "card_testing"
    ]
    for before, after in shifted:
        assert after == pytest.approx(before * drift.amount_factor, abs=0.006)
    mean_before = statistics.fmean(b for b, _ in shifted)
    mean_after = statistics.fmean(a for _, a in shifted)
    assert mean_after / mean_before == pytest.approx(drift.amount_factor, rel=1e-3)
    readings = _pairs(plain, drifted, "iot.telemetry")
    assert len(readings) > 3000
    temperatures = [a["data"]["temperature_c"] - b["data"]["temperature_c"] for b, a in readings]
    assert statistics.fmean(temperatures) == pytest.approx(drift.temperature_c, abs=0.01)
    vibration = [(b["data"]["vibration_mm_s"], a["data"]["vibration_mm_s"]) for b, a in readings]
    for before, after in vibration:
        assert after == pytest.approx(before * drift.vibration_factor, abs=0.0006)
    for before, after in readings:
        for name in ("device_id", "pressure_kpa", "rpm"):
            assert after["data"][name] == before["data"][name]


def test_the_default_drift_moves_psi_past_the_act_threshold(
    drifted: list[dict[str, Any]],
) -> None:
    for event_type, field in (
        ("payment.transaction", "amount"),
        ("iot.telemetry", "temperature_c"),
        ("iot.telemetry", "vibration_mm_s"),
    ):
        values = [(_after(e), e["data"][field]) for e in drifted if e["type"] == event_type]
        reference = np.array([v for after, v in values if not after])
        current = np.array([v for after, v in values if after])
        assert min(len(reference), len(current)) > 3000
        assert psi(reference, current) >= 2 * PSI_ACT, field


@pytest.mark.parametrize("drift", [Drift(), STRONGEST, WEAKEST], ids=["default", "max", "min"])
def test_drifted_events_pass_their_contracts_and_keep_their_patterns(
    drifted: list[dict[str, Any]], drift: Drift
) -> None:
    events = drifted if drift == Drift() else stream(drift)
    decoder = EventDecoder()
    for event in events:
        if _after(event):
            decoder.decode(json.dumps(event).encode())
    after = [e for e in events if _after(e)]
    labels = {e["simlabel"] for e in after}
    assert {"burst", "unusual_country", "card_testing", "degrading", "failed"} <= labels
    assert all(e["data"]["amount"] <= 2.0 for e in after if e.get("simlabel") == "card_testing")
    assert all(e["data"]["rpm"] == 0.0 for e in after if e.get("simlabel") == "failed")
    # The labels of what happened after the drift still come.
    paid_after = {
        e["data"]["transaction_id"]
        for e in after
        if e["type"] == "payment.transaction" and e["simlabel"] != "legit"
    }
    chargebacks = [e for e in after if e["type"] == "payment.chargeback"]
    assert any(c["data"]["transaction_id"] in paid_after for c in chargebacks)
    failures = [e for e in after if e["type"] == "device.failure"]
    assert any(dt.datetime.fromisoformat(f["data"]["failed_at"]) >= DRIFT_AT for f in failures)


def test_drift_and_its_time_are_checked() -> None:
    for bad in (float("nan"), float("inf"), -3.0, 0.0, 1e9):
        with pytest.raises(ValueError, match="amount_factor"):
            Drift(amount_factor=bad)
        with pytest.raises(ValueError, match="vibration_factor"):
            Drift(vibration_factor=bad)
    for bad in (float("nan"), float("-inf"), -51.0, 1e9):
        with pytest.raises(ValueError, match="temperature_c"):
            Drift(temperature_c=bad)
    with pytest.raises(ValueError, match="time zone"):
        Traffic(drift_at=dt.datetime(2024, 5, 1))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2024-05-01T12:00:00Z", dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)),
        ("2024-05-01T14:30:00+02:00", dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)),
        ("2024-05-01T12:00:00.250000+00:00", dt.datetime(2024, 5, 1, 12, 0, 0, 250_000, dt.UTC)),
        ("0001-01-01T00:00:00Z", dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
        ("9999-12-31T23:59:59Z", dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)),
        ("+90s", dt.timedelta(seconds=90)),
        ("+10m", dt.timedelta(minutes=10)),
        ("+2h", dt.timedelta(hours=2)),
        ("+1.5d", dt.timedelta(days=1, hours=12)),
        ("+0s", dt.timedelta(0)),
        ("+366d", dt.timedelta(days=366)),
    ],
)
def test_drift_at_takes_a_time_with_its_zone_or_an_offset(
    when: str, expected: dt.datetime | dt.timedelta
) -> None:
    args = parse_args(["--drift-at", when])
    assert args.drift_at == expected
    assert args.drift == Drift()
    if isinstance(expected, dt.datetime):
        assert args.drift_at.utcoffset() == dt.timedelta(0)


def test_an_offset_counts_from_start_and_the_options_tune_the_drift() -> None:
    args = parse_args(
        [
            "--start",
            "2024-05-01T00:00:00Z",
            "--drift-at",
            "+10m",
            "--drift-amount-factor",
            "5",
            "--drift-temperature-c",
            "-12.5",
            "--drift-vibration-factor",
            "0.5",
        ]
    )
    assert args.drift_at == START + dt.timedelta(minutes=10)
    assert args.drift == Drift(amount_factor=5.0, temperature_c=-12.5, vibration_factor=0.5)


@pytest.mark.parametrize(
    "arguments",
    [
        ["--drift-at", ""],
        ["--drift-at", "soon"],
        ["--drift-at", "+"],
        ["--drift-at", "+10"],
        ["--drift-at", "+10y"],
        ["--drift-at", "+-5m"],
        ["--drift-at", "-10m"],
        ["--drift-at", "+1e3h"],
        ["--drift-at", "+nanh"],
        ["--drift-at", "+infm"],
        ["--drift-at", "+\u0663m"],  # an Arabic-Indic three
        ["--drift-at", "+367d"],
        ["--drift-at", "+9999999d"],
        ["--drift-at", "2024-05-01T12:00:00"],  # no zone
        ["--drift-at", "2024-05-01"],
        ["--drift-at", "2024-13-01T00:00:00Z"],
        ["--drift-at", "2024-05-01T12:00:00+24:00"],
        ["--drift-at", "0001-01-01T00:00:00+01:00"],  # before year 1 in UTC
        ["--drift-at", "9999-12-31T23:59:59-01:00"],  # after year 9999 in UTC
        ["--drift-at", "00000-01-01T00:00:00Z"],
        ["--drift-at", "2024-05-01T12:00:00Z\x00"],
        ["--drift-at", "9" * 10_000],
        ["--start", "9999-12-31T23:00:00Z", "--drift-at", "+2h"],
        ["--start", "sometime"],
        *(
            ["--drift-at", "+10m", option, value]
            for option in ("--drift-amount-factor", "--drift-vibration-factor")
            for value in ("nan", "inf", "-inf", "-3", "0", "0.05", "101", "1e400", "x", "")
        ),
        *(
            ["--drift-at", "+10m", "--drift-temperature-c", value]
            for value in ("nan", "inf", "-inf", "-50.5", "51", "1e9", "8C")
        ),
        ["--drift-amount-factor", "2"],  # without --drift-at
    ],
)
def test_bad_drift_arguments_are_refused_with_a_message(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(arguments)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "error:" in error and "Traceback" not in error
    assert len(error) < 2_000


@given(st.text(max_size=60))
def test_drift_at_gives_a_moment_an_offset_or_a_clear_refusal(text: str) -> None:
    try:
        when = drift_time(text)
    except argparse.ArgumentTypeError as refused:
        assert str(refused)
        return
    if isinstance(when, dt.timedelta):
        assert dt.timedelta(0) <= when <= dt.timedelta(days=366)
    else:
        assert when.utcoffset() == dt.timedelta(0)


def test_live_mode_says_when_the_drift_begins(capsys: pytest.CaptureFixture[str]) -> None:
    posted: list[dict[str, Any]] = []

    def accept(request: Request) -> Response:
        posted.extend(request.body)
        return Response(202, {"accepted": len(request.body), "rejected": []})

    with LoopbackServer() as host:
        host.route("POST", "/api/events", accept)
        code = simulate(
            [
                *("--url", f"{host.url}/api/events", "--key", "test", "--seed", "5"),
                *("--start", "2024-05-01T00:00:00Z", "--rate", "400", "--batch", "100"),
                *("--duration", "0.1", "--drift-at", "+0.2s"),
            ]
        )
    assert code == 0
    err = capsys.readouterr().err
    assert "drift from 2024-05-01T00:00:00.200000Z on: payment amounts x3" in err
    assert "drift began at 2024-05-01T00:00:00.200000Z" in err
    # What went out is the library's stream with the same drift.
    traffic = Traffic(5, drift_at=START + dt.timedelta(seconds=0.2))
    assert posted == list(itertools.islice(traffic.events(simulated_clock(START, 400.0)), 100))
