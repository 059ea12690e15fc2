"""Realistic CloudEvents of the three contracts, with patterns a model can learn.

- Payments: each account has a home country, a card, usual merchants and a typical amount.
  Fraud comes as bursts (many purchases on one card within seconds), unusual countries with
  large amounts, and card testing (runs of tiny online amounts at new merchants).
- Telemetry: each device hovers around its baseline; some start to degrade, with vibration
  and temperature drifting up for a while before the device fails (rpm drops to 0), after
  which it is repaired.
- Interactions: users favour a few categories; viewing an item often leads to its affine
  items; views turn into clicks, cart additions and purchases along a funnel.

Labels arrive as events, late, as in real life:

- `payment.chargeback`: most fraudulent payments (`CHARGEBACK_SHARE`) are disputed by their card
  holders between 12 hours and 14 days later (median about 3 days) with a fraud reason code;
  a few legitimate ones (`DISPUTE_SHARE`) are disputed too, with a dispute reason code (goods
  not received...), which must not teach the fraud model.
- `device.failure`: maintenance reports each failure 5 minutes to 2 hours after it happened,
  naming the time it failed and a component.

`label_delay_scale` multiplies those delays (0.001 turns days into minutes, for a demo).
Unless `labels=False`, every event also carries the `simlabel` extension attribute (the ground
truth, e.g. `card_testing` or `degrading`; `label` on the label events), which bronze keeps in
its `extensions` column: tests may check models with it, training never reads it.
Deterministic for a seed.

Drift on demand: from event time `drift_at` on, the traffic shifts as `Drift` says: payment
amounts times `amount_factor` (all but card testing's probes, which stay tiny: that is their
point), telemetry temperatures plus `temperature_c` and vibrations times `vibration_factor`.
The shift is applied to each event as it goes out and draws nothing from the seeded stream, so
the events before `drift_at` are those of the same seed without drift, and those after differ
only in the shifted values; the fraud and failure patterns, and their labels, carry on.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import random
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

COUNTRIES = ("FR", "DE", "ES", "IT", "NL", "BE", "GB", "US", "PT", "IE")
UNUSUAL_COUNTRIES = ("NG", "RU", "BR", "VN", "PH", "KP", "IR")
CURRENCY = {"GB": "GBP", "US": "USD"}
MCCS = ("5411", "5812", "5541", "5311", "5912", "5999", "4111", "5732", "7011", "5651")
CARD_TESTING_MCCS = ("5815", "5816", "5818", "7994")
ACTIONS = ("view", "click", "add_to_cart", "purchase")
FRAUD_CODES = ("10.4", "10.4", "10.4", "10.5", "4837", "4863", "10.2")  # card-absent fraud first
DISPUTE_CODES = ("13.1", "13.3", "12.6.1", "4853", "4834")
COMPONENTS = ("bearing", "bearing", "motor", "pump_seal", "gearbox", "sensor", "other")
CHARGEBACK_SHARE = 0.85  # of fraudulent payments, disputed by their card holders
DISPUTE_SHARE = 0.002  # of legitimate payments, disputed all the same
_TRUTH = "_truth"  # the ground truth of an event, kept aside until it is stamped
_FAILED = "_failed"  # on the first reading of a failed device: the component that failed
# A drift's sane limits: its factors, and its temperature shift in degrees Celsius (far from
# the contracts' bounds however far a degrading machine heats up).
DRIFT_FACTORS = (0.1, 100.0)
DRIFT_TEMPERATURES_C = (-50.0, 50.0)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def luhn_complete(prefix: str) -> str:
    """`prefix` plus its Luhn check digit."""
    total = 0
    for position, char in enumerate(reversed(prefix)):
        value = int(char)
        if position % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return prefix + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class Drift:
    """How the traffic shifts from its drift time on. The defaults put the population stability
    index of the amount and telemetry features well past monitoring's 0.25 (act)."""

    amount_factor: float = 3.0
    temperature_c: float = 8.0
    vibration_factor: float = 1.5

    def __post_init__(self) -> None:
        low, high = DRIFT_FACTORS
        for name in ("amount_factor", "vibration_factor"):
            if not low <= getattr(self, name) <= high:  # NaN fails it too
                raise ValueError(f"Drift: {name} is from {low:g} to {high:g}")
        low, high = DRIFT_TEMPERATURES_C
        if not low <= self.temperature_c <= high:
            raise ValueError(f"Drift: temperature_c is from {low:g} to {high:g}")

    def __str__(self) -> str:
        return (
            f"payment amounts x{self.amount_factor:g}, temperature {self.temperature_c:+g} C, "
            f"vibration x{self.vibration_factor:g}"
        )


@dataclass
class Account:
    account_id: str
    card_number: str
    country: str
    typical_amount: float
    merchants: list[tuple[str, str]]


@dataclass
class Device:
    device_id: str
    temperature: float
    vibration: float
    pressure: float
    rpm: float
    degrading_for: int = 0  # readings left before failure; 0 when healthy
    failed_for: int = 0
    reported: bool = False  # its current failure has been seen (and will be reported)


@dataclass
class Shopper:
    user_id: str
    categories: list[int]
    session_id: str = ""
    viewed: deque[int] = field(default_factory=lambda: deque(maxlen=5))


class Traffic:
    """An endless, seeded stream of events of all three types."""

    def __init__(
        self,
        seed: int = 0,
        *,
        accounts: int = 500,
        devices: int = 50,
        users: int = 300,
        items: int = 400,
        fraud_rate: float = 0.02,
        mix: tuple[float, float, float] = (0.5, 0.3, 0.2),
        labels: bool = True,
        label_delay_scale: float = 1.0,
        drift_at: dt.datetime | None = None,
        drift: Drift | None = None,
    ) -> None:
        if drift_at is not None and drift_at.utcoffset() is None:
            raise ValueError("Traffic: drift_at needs its time zone")
        self.rng = random.Random(seed)
        rng = self.rng
        self.fraud_rate = fraud_rate
        self.mix = mix
        self.labels = labels
        self.label_delay_scale = label_delay_scale
        self.drift_at = drift_at
        self.drift = drift or Drift()
        self.drift_began: dt.datetime | None = None  # the time of the first shifted event
        # Label events not yet due: (due time, order, event).
        self._due: list[tuple[dt.datetime, int, dict[str, Any]]] = []
        self._order = itertools.count()
        self.accounts = [
            Account(
                f"acct-{i:06d}",
                luhn_complete("4" + "".join(rng.choice("0123456789") for _ in range(14))),
                rng.choice(COUNTRIES),
                round(rng.lognormvariate(3.2, 0.6), 2),
                [(f"m-{rng.randrange(2000):05d}", rng.choice(MCCS)) for _ in range(6)],
            )
            for i in range(accounts)
        ]
        self.devices = [
            Device(
                f"dev-{i:04d}",
                rng.gauss(60, 5),
                rng.uniform(1.0, 3.0),
                rng.gauss(300, 20),
                rng.choice((1450.0, 1800.0, 3000.0)),
            )
            for i in range(devices)
        ]
        self.item_category = [rng.randrange(20) for _ in range(items)]
        # Each item has a few affine items, mostly from its own category.
        by_category: dict[int, list[int]] = {}
        for item, category in enumerate(self.item_category):
            by_category.setdefault(category, []).append(item)
        self.affinity = [
            rng.sample(by_category[self.item_category[item]], min(3, len(by_category[c])))
            + [rng.randrange(items)]
            for item, c in enumerate(self.item_category)
        ]
        self.by_category = by_category
        self.shoppers = [Shopper(f"u-{i:05d}", rng.sample(range(20), 3)) for i in range(users)]
        self._pending: deque[dict[str, Any]] = deque()

    def events(self, clock: Iterator[dt.datetime]) -> Iterator[dict[str, Any]]:
        """Events, stamped by `clock` (one tick per event), until the clock ends; a label
        event goes out at the first tick after it is due."""
        for moment in clock:
            if self._due and self._due[0][0] <= moment:
                event = heapq.heappop(self._due)[2]
                if event["type"] == "payment.chargeback":
                    event["data"]["reported_at"] = iso(moment)
            else:
                if not self._pending:
                    self._refill()
                event = self._pending.popleft()
                if self.drift_at is not None and moment >= self.drift_at:
                    self._shift(event, moment)
                self._follow_up(event, moment)
            event["time"] = iso(moment)
            yield event

    def labels_pending(self) -> int:
        """Label events scheduled and not yet out."""
        return len(self._due)

    def _shift(self, event: dict[str, Any], moment: dt.datetime) -> None:
        """Apply the drift to an event: no random draw, so the stream stays that of the seed."""
        if self.drift_began is None:
            self.drift_began = moment
        data, drift = event["data"], self.drift
        if event["type"] == "payment.transaction" and event[_TRUTH] != "card_testing":
            data["amount"] = round(data["amount"] * drift.amount_factor, 2)
        elif event["type"] == "iot.telemetry":
            data["temperature_c"] = round(data["temperature_c"] + drift.temperature_c, 2)
            data["vibration_mm_s"] = round(data["vibration_mm_s"] * drift.vibration_factor, 3)

    def _follow_up(self, event: dict[str, Any], moment: dt.datetime) -> None:
        """Schedule the label events an event will bring: its chargeback, its failure report."""
        truth = event.pop(_TRUTH)
        component = event.pop(_FAILED, None)
        rng = self.rng
        if event["type"] == "payment.transaction":
            if truth == "legit":
                if rng.random() >= DISPUTE_SHARE:
                    return
                code = rng.choice(DISPUTE_CODES)
            elif rng.random() < CHARGEBACK_SHARE:
                code = rng.choice(FRAUD_CODES)
            else:
                return
            hours = min(14 * 24.0, max(12.0, rng.lognormvariate(4.3, 0.7)))  # median ~3 days
            data = event["data"]
            chargeback = {
                "transaction_id": data["transaction_id"],
                "account_id": data["account_id"],
                "reason_code": code,
                "reported_at": "",  # when it goes out
            }
            self._schedule(
                moment + dt.timedelta(hours=hours * self.label_delay_scale),
                self._event("payment.chargeback", "/payments/disputes", chargeback, "label"),
            )
        elif component is not None:
            minutes = rng.uniform(5, 120)
            report = {
                "device_id": event["data"]["device_id"],
                "failed_at": iso(moment),
                "component": component,
            }
            self._schedule(
                moment + dt.timedelta(minutes=minutes * self.label_delay_scale),
                self._event("device.failure", "/plant/maintenance", report, "label"),
            )

    def _schedule(self, due: dt.datetime, event: dict[str, Any]) -> None:
        event.pop(_TRUTH, None)
        heapq.heappush(self._due, (due, next(self._order), event))

    def _refill(self) -> None:
        kind = self.rng.choices(("payment", "telemetry", "interaction"), self.mix)[0]
        if kind == "payment":
            self._pending.extend(self._payments())
        elif kind == "telemetry":
            self._pending.append(self._telemetry())
        else:
            self._pending.extend(self._interactions())

    def _event(
        self, event_type: str, source: str, data: dict[str, Any], label: str
    ) -> dict[str, Any]:
        event = {
            "specversion": "1.0",
            "type": event_type,
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "source": source,
            "data": data,
        }
        if self.labels:
            event["simlabel"] = label
        event[_TRUTH] = label
        return event

    def _payment(
        self,
        account: Account,
        amount: float,
        merchant: tuple[str, str],
        country: str,
        channel: str,
        label: str,
    ) -> dict[str, Any]:
        data = {
            "transaction_id": f"tx-{self.rng.getrandbits(48):012x}",
            "account_id": account.account_id,
            "card_number": account.card_number,
            "amount": round(amount, 2),
            "currency": CURRENCY.get(country, "EUR"),
            "merchant_id": merchant[0],
            "merchant_category": merchant[1],
            "country": country,
            "channel": channel,
        }
        return self._event("payment.transaction", f"/payments/{channel}", data, label)

    def _payments(self) -> list[dict[str, Any]]:
        rng = self.rng
        account = rng.choice(self.accounts)
        if rng.random() >= self.fraud_rate:
            amount = max(0.5, rng.gauss(account.typical_amount, account.typical_amount / 3))
            channel = rng.choices(("pos", "ecommerce", "atm"), (0.6, 0.3, 0.1))[0]
            merchant = rng.choice(account.merchants)
            return [self._payment(account, amount, merchant, account.country, channel, "legit")]
        pattern = rng.choice(("burst", "unusual_country", "card_testing"))
        if pattern == "burst":
            merchants = [(f"m-{rng.randrange(2000):05d}", rng.choice(MCCS)) for _ in range(3)]
            return [
                self._payment(
                    account,
                    rng.uniform(80, 600),
                    rng.choice(merchants),
                    account.country,
                    "ecommerce",
                    "burst",
                )
                for _ in range(rng.randint(5, 12))
            ]
        if pattern == "unusual_country":
            amount = account.typical_amount * rng.uniform(8, 30)
            merchant = (f"m-{rng.randrange(2000, 3000):05d}", rng.choice(MCCS))
            country = rng.choice(UNUSUAL_COUNTRIES)
            return [self._payment(account, amount, merchant, country, "pos", "unusual_country")]
        return [
            self._payment(
                account,
                rng.uniform(0.5, 2.0),
                (f"m-{rng.randrange(3000, 4000):05d}", rng.choice(CARD_TESTING_MCCS)),
                account.country,
                "ecommerce",
                "card_testing",
            )
            for _ in range(rng.randint(4, 10))
        ]

    def _telemetry(self) -> dict[str, Any]:
        rng = self.rng
        device = rng.choice(self.devices)
        label = "healthy"
        failed = None
        if device.failed_for:
            device.failed_for -= 1
            rpm, vibration, label = 0.0, rng.uniform(0.0, 0.2), "failed"
            if not device.reported:  # the first reading after it failed
                device.reported = True
                failed = rng.choice(COMPONENTS)
            if device.failed_for == 0:  # repaired
                device.vibration = rng.uniform(1.0, 3.0)
                device.temperature = rng.gauss(60, 5)
                device.reported = False
        else:
            if device.degrading_for == 0 and rng.random() < 0.01:
                device.degrading_for = rng.randint(20, 60)
            if device.degrading_for:
                device.degrading_for -= 1
                device.vibration *= rng.uniform(1.02, 1.08)
                device.temperature += rng.uniform(0.2, 0.8)
                label = "degrading"
                if device.degrading_for == 0:
                    device.failed_for = rng.randint(5, 15)
            rpm = device.rpm * rng.gauss(1.0, 0.01)
            vibration = device.vibration * rng.gauss(1.0, 0.05)
        data = {
            "device_id": device.device_id,
            "temperature_c": round(device.temperature + rng.gauss(0, 0.5), 2),
            "vibration_mm_s": round(max(0.0, vibration), 3),
            "pressure_kpa": round(device.pressure + rng.gauss(0, 2), 1),
            "rpm": round(max(0.0, rpm), 1),
        }
        event = self._event("iot.telemetry", f"/plant/{device.device_id}", data, label)
        if failed is not None:
            event[_FAILED] = failed
        return event

    def _interactions(self) -> list[dict[str, Any]]:
        rng = self.rng
        shopper = rng.choice(self.shoppers)
        if not shopper.session_id or rng.random() < 0.1:
            shopper.session_id = f"s-{rng.getrandbits(40):010x}"
            shopper.viewed.clear()
        if shopper.viewed and rng.random() < 0.6:
            item = rng.choice(self.affinity[rng.choice(shopper.viewed)])
            label = "affinity"
        else:
            item = rng.choice(self.by_category[rng.choice(shopper.categories)])
            label = "browse"
        shopper.viewed.append(item)
        events = []
        for depth, action in enumerate(ACTIONS):
            if depth and rng.random() > (0.35, 0.3, 0.4)[depth - 1]:
                break
            data = {
                "user_id": shopper.user_id,
                "item_id": f"item-{item:05d}",
                "action": action,
                "session_id": shopper.session_id,
            }
            events.append(self._event("app.interaction", "/apps/shop", data, label))
        return events


def simulated_clock(start: dt.datetime, rate: float) -> Iterator[dt.datetime]:
    """One tick per event at `rate` events per second, from `start`."""
    step = dt.timedelta(seconds=1 / rate)
    moment = start
    while True:
        yield moment
        moment += step


def wall_clock() -> Iterator[dt.datetime]:
    while True:
        yield dt.datetime.now(dt.UTC)
