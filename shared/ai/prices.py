"""What a request costs: list prices per model, in US dollars per million tokens.

Source: OpenAI's API pricing page (https://openai.com/api/pricing, standard tier), as published
in 2025; Azure OpenAI's Global deployments charge the same for these models
(https://azure.microsoft.com/pricing/details/cognitive-services/openai-service/). Regional and
Data Zone deployments, batch, priority and provisioned throughput are priced otherwise, and
prices change: edit `PRICES` when they do. A model not in the table has no cost (None), and the
usage summary counts such requests apart rather than as free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens: prompt (input), cached prompt (None: no discount), and
    completion (output)."""

    input: float
    cached_input: float | None
    output: float


PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 0.125, 10.00),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "o1": Price(15.00, 7.50, 60.00),
    "o3": Price(2.00, 0.50, 8.00),
    "o3-mini": Price(1.10, 0.55, 4.40),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "gpt-4-turbo": Price(10.00, None, 30.00),
    "gpt-4": Price(30.00, None, 60.00),
    "gpt-3.5-turbo": Price(0.50, None, 1.50),
    "gpt-35-turbo": Price(0.50, None, 1.50),  # Azure's name for it
    "text-embedding-3-small": Price(0.02, None, 0.0),
    "text-embedding-3-large": Price(0.13, None, 0.0),
    "text-embedding-ada-002": Price(0.10, None, 0.0),
}
_VERSION = re.compile(r"-\d{4}(-\d{2}-\d{2})?")  # a snapshot: gpt-4o-2024-08-06, gpt-4-0613


def price_of(model: str, prices: dict[str, Price] = PRICES) -> Price | None:
    """The price of a model, by its name or a dated snapshot of it; None if unknown."""
    name = model.strip().lower()
    if name in prices:
        return prices[name]
    for key in sorted(prices, key=len, reverse=True):
        if name.startswith(key) and _VERSION.fullmatch(name[len(key) :]):
            return prices[key]
    return None


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    cached_prompt_tokens: int = 0,
    prices: dict[str, Price] = PRICES,
) -> float | None:
    """What the tokens cost in dollars (to 1e-10), or None for a model without a price."""
    price = price_of(model, prices)
    if price is None:
        return None
    cached = min(max(0, cached_prompt_tokens), prompt_tokens)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    scaled = (  # dollars times a million
        (prompt_tokens - cached) * price.input
        + cached * cached_rate
        + completion_tokens * price.output
    )
    return round(scaled / 1_000_000, 10)
