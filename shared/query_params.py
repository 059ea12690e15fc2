"""Query parameters that several routes read the same way: a time (`since`) and a page size
(`top`), each refused with a ValueError naming the parameter."""

from __future__ import annotations

import re
from datetime import datetime

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,20}))?([Zz]|[+-]\d{2}:\d{2})"
)


def since(text: str | None, name: str = "since") -> datetime | None:
    """An RFC 3339 date-time with its zone, as the API's description says (Python would take
    more forms); None when absent."""
    if text is None:
        return None
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ValueError(f"{name} is an RFC 3339 time with a zone, not {text[:40]!r}")
    day, clock, fraction, zone = found.groups()
    micro = f".{(fraction or '')[:6]:0<6}"
    try:
        return datetime.fromisoformat(f"{day}T{clock}{micro}{zone.upper()}")
    except ValueError as error:
        raise ValueError(f"{name} is not a real time: {text[:40]!r}") from error


def top(text: str | None, default: int, limit: int, name: str = "top") -> int:
    """A whole number from 1 to `limit`; `default` when absent."""
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 7 or not 1 <= int(text) <= limit:
        raise ValueError(f"{name} is a whole number from 1 to {limit}, not {text[:20]!r}")
    return int(text)
