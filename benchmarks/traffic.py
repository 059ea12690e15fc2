"""Realistic CloudEvents of the three contracts, with patterns a model can learn.

- Payments: each account has a home country, a card, usual merchants and a typical amount.
  Fraud comes as bursts (many purchases on one card within seconds), unusual countries with
  large amounts, and card testing (runs of tiny online amounts at new merchants).
- Telemetry: each device hovers around its baseline; some start to degrade, with vibration
  and temperature drifting up for a while before the device fails (rpm drops to 0), after
  which it is repaired.
- Interactions: users favour a few categories; viewing an item often leads to its affine
  items; views turn into clicks, cart additions and purchases along a funnel.

Unless `labels=False`, every event carries the `simlabel` extension attribute (the ground
truth, e.g. `card_testing` or `degrading`), which bronze keeps in its `extensions` column.
Deterministic for a seed.
"""

from __future__ import annotations

import datetime as dt
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


def luhn_complete(prefix: str) -> str:
    """`prefix` plus its Luhn check digit."""
    total = 0
    for position, char in enumerate(reversed(prefix)):
        value = int(char)
        if position % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return prefix + str((10 - total % 10) % 10)


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
    ) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.fraud_rate = fraud_rate
        self.mix = mix
        self.labels = labels
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
        """Events forever, stamped by `clock` (one tick per event)."""
        while True:
            if not self._pending:
                self._refill()
            event = self._pending.popleft()
            event["time"] = next(clock).isoformat().replace("+00:00", "Z")
            yield event

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
        if device.failed_for:
            device.failed_for -= 1
            rpm, vibration, label = 0.0, rng.uniform(0.0, 0.2), "failed"
            if device.failed_for == 0:  # repaired
                device.vibration = rng.uniform(1.0, 3.0)
                device.temperature = rng.gauss(60, 5)
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
        return self._event("iot.telemetry", f"/plant/{device.device_id}", data, label)

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
