"""A generated CSV of payment transactions for the landing benchmark, written in bounded memory."""

from __future__ import annotations

import random
from pathlib import Path

from benchmarks.traffic import luhn_complete

HEADER = (
    "transaction_id,account_id,card_number,amount,currency,merchant_id,"
    "merchant_category,country,channel\n"
)
_CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK", "PLN")
_COUNTRIES = ("NL", "DE", "FR", "BE", "GB", "US", "ES", "IT", "PL", "SE")
_CHANNELS = ("pos", "ecommerce", "atm")
_MCCS = ("5411", "5812", "5999", "4111", "5732", "6011", "5541", "7011")
BAD_EVERY = 1000  # one row in this many breaks its contract (a mistyped card number)


def _rows(seed: int, count: int) -> list[str]:
    """`count` distinct row bodies (everything after the transaction id)."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        card = luhn_complete(f"4{rng.randrange(10**14):014d}")
        if n % BAD_EVERY == BAD_EVERY - 1:
            card = card[:-1] + str((int(card[-1]) + 1) % 10)  # fails Luhn
        amount = f"{rng.lognormvariate(3.0, 1.2):.2f}"
        rows.append(
            f",acct-{rng.randrange(200_000):07d},{card},{amount},{rng.choice(_CURRENCIES)},"
            f"merchant-{rng.randrange(20_000):06d},{rng.choice(_MCCS)},"
            f"{rng.choice(_COUNTRIES)},{rng.choice(_CHANNELS)}\n"
        )
    return rows


def write_payments_csv(path: Path, megabytes: float, seed: int = 7) -> tuple[int, int]:
    """Write at least `megabytes` MiB of payments; returns (rows, bad rows)."""
    target = int(megabytes * 1024 * 1024)
    bodies = _rows(seed, 9_973)  # a prime, so bodies and transaction ids don't line up
    count = bad = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        written = len(HEADER)
        while written < target:
            block = []
            for body in bodies:
                block.append(f"tx-{count:012d}{body}")
                count += 1
            text = "".join(block)
            handle.write(text)
            written += len(text)
            bad += len(bodies) // BAD_EVERY
    return count, bad
