"""Traffic for the model lifecycle's demos, benchmark and tests: labelled history whose second
half has drifted, and live traffic posted to a host while a rollout runs."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import requests

from benchmarks.traffic import Drift, Traffic, simulated_clock

BATCH = "application/cloudevents-batch+json"


def drifted_history(
    days: float, rate: float, amount_factor: float = 8.0, seed: int = 3
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`days` of events up to a minute ago, `rate` per simulated second, labels due sooner
    (`label_delay_scale` 0.1); payment amounts x `amount_factor` in the second half. The events
    before the drift, and the rest."""
    end = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    drift_at = end - dt.timedelta(days=days / 2)
    ticks = itertools.takewhile(
        lambda moment: moment < end, simulated_clock(end - dt.timedelta(days=days), rate)
    )
    drift = Drift(amount_factor=amount_factor)
    traffic = Traffic(seed, label_delay_scale=0.1, drift_at=drift_at, drift=drift)
    events = list(traffic.events(ticks))
    cut = drift_at.isoformat().replace("+00:00", "Z")
    before = [event for event in events if event["time"] < cut]
    return before, events[len(before) :]


class LiveTraffic:
    """Events posted as they happen (`rate` a second, in batches of 50), until the block ends."""

    def __init__(self, url: Callable[[str], str], rate: float = 200.0, seed: int = 17) -> None:
        self.url = url
        self.interval = 50 / rate
        self.stop = threading.Event()
        clock = simulated_clock(dt.datetime.now(dt.UTC), rate)
        self.events = Traffic(seed, label_delay_scale=0.1).events(clock)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            batch = [next(self.events) for _ in range(50)]
            requests.post(
                self.url("/api/events"),
                data=json.dumps(batch),
                headers={"content-type": BATCH},
                timeout=30,
            )

    def __enter__(self) -> LiveTraffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
