"""Payment features per account: what fraud is learned from and scored on.

- `count_10m`, `count_1h`, `count_24h` and `amount_10m`, `amount_1h`, `amount_24h`: the
  account's payments (and their total) in the window ending with this one;
- `amount_vs_usual`: this amount against the mean of the account's earlier payments (1 for
  its first);
- `first_time_country`: 1 when the account never paid in this country before;
- `merchant_category_risk`: the category's prior risk (`MCC_RISK`: digital goods, gambling,
  money transfer and crypto are where stolen cards are tried and cashed out);
- `small_count_5m`: payments under `SMALL_AMOUNT` in the last 5 minutes (card testing);
- `seconds_since_last` (-1 for the first), `ecommerce` and `atm` (the channel; POS is 0, 0).
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.features.base import NONE, Row

WINDOWS = (("10m", 600.0), ("1h", 3600.0), ("24h", 86_400.0))
HORIZON_S = 86_400.0  # the longest window: older payments leave the state
BURST_S = 300.0
SMALL_AMOUNT = 5.0
MAX_COUNTRIES = 64
MCC_RISK = {
    "5815": 0.8,  # digital goods: media
    "5816": 0.8,  # digital goods: games
    "5817": 0.7,  # digital goods: applications
    "5818": 0.8,  # digital goods: large merchants
    "7994": 0.7,  # video game arcades
    "7995": 0.9,  # gambling
    "4829": 0.9,  # money transfer
    "6051": 0.9,  # quasi-cash, crypto
    "6211": 0.6,  # securities brokers
    "5732": 0.4,  # electronics
    "5944": 0.5,  # jewellery
}
DEFAULT_MCC_RISK = 0.1


class AccountState(msgspec.Struct):
    """An account's payments of the last 24 hours (time, amount), all-time count and total, and
    the countries it paid in."""

    recent: list[tuple[float, float]] = msgspec.field(default_factory=list)
    count: int = 0
    total: float = 0.0
    countries: list[str] = msgspec.field(default_factory=list)
    last_t: float = NONE


class PaymentFeatures:
    name = "payments"
    event_type = "payment.transaction"
    entity = "account_id"
    numeric: tuple[str, ...] = (
        "amount",
        "count_10m",
        "count_1h",
        "count_24h",
        "amount_10m",
        "amount_1h",
        "amount_24h",
        "amount_vs_usual",
        "first_time_country",
        "merchant_category_risk",
        "small_count_5m",
        "seconds_since_last",
        "ecommerce",
        "atm",
    )
    categorical: frozenset[str] = frozenset(
        {"first_time_country", "merchant_category_risk", "ecommerce", "atm"}
    )
    state_type = AccountState

    def new_state(self) -> AccountState:
        return AccountState()

    def features(self, state: AccountState, row: Row) -> dict[str, Any]:
        t, amount = float(row["t"]), float(row["amount"])
        found: dict[str, Any] = {"amount": amount}
        # One pass over the recent payments (the windows nest); each total adds in their
        # order from 0, as sum() does, and each bound is the window's `t - seconds < when`.
        (_, s10m), (_, s1h), (_, s24h) = WINDOWS
        lo10m, lo1h, lo24h, lo_burst = t - s10m, t - s1h, t - s24h, t - BURST_S
        n10m = n1h = n24h = small = 0
        a10m = a1h = a24h = 0.0
        for when, a in state.recent:
            if when > t or when <= lo24h:
                continue
            n24h += 1
            a24h += a
            if when > lo1h:
                n1h += 1
                a1h += a
                if when > lo10m:
                    n10m += 1
                    a10m += a
                    if when > lo_burst and a < SMALL_AMOUNT:
                        small += 1
        for label, count, total in (("10m", n10m, a10m), ("1h", n1h, a1h), ("24h", n24h, a24h)):
            found[f"count_{label}"] = float(count + 1)
            found[f"amount_{label}"] = amount + total
        usual = state.total / state.count if state.count else 0.0
        found["amount_vs_usual"] = amount / usual if usual > 0 else 1.0
        found["first_time_country"] = float(row["country"] not in state.countries)
        found["merchant_category_risk"] = MCC_RISK.get(row["merchant_category"], DEFAULT_MCC_RISK)
        found["small_count_5m"] = float(small + (amount < SMALL_AMOUNT))
        last = state.last_t
        found["seconds_since_last"] = t - last if last != NONE and t >= last else NONE
        found["ecommerce"] = float(row["channel"] == "ecommerce")
        found["atm"] = float(row["channel"] == "atm")
        return found

    def apply(self, state: AccountState, row: Row) -> None:
        t, amount = float(row["t"]), float(row["amount"])
        newest = max(t, state.last_t)
        state.recent = [(w, a) for w, a in state.recent if w > newest - HORIZON_S]
        if t > newest - HORIZON_S:
            state.recent.append((t, amount))
        state.count += 1
        state.total += amount
        country = row["country"]
        if country not in state.countries and len(state.countries) < MAX_COUNTRIES:
            state.countries.append(country)
        state.last_t = newest
