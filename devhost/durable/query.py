"""The query parameters of the Durable HTTP API, parsed strictly and one way for list and purge.

Azure's handler parses `runtimeStatus` with `Enum.TryParse` (case-sensitive) and silently drops
what it cannot parse, so a misspelt status widens a purge to every instance in the range. Here a
value that is not one of the status names, exactly, is a 400 that names the valid ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from devhost.durable.store import TERMINAL_STATUSES, InstanceQuery

# OrchestrationRuntimeStatus, as Azure spells it (ContinuedAsNew is never stored here).
RUNTIME_STATUSES = (
    "Running",
    "Completed",
    "ContinuedAsNew",
    "Failed",
    "Canceled",
    "Terminated",
    "Pending",
    "Suspended",
)
TOP_MAX = 2**31 - 1  # `top` is an Int32 in Azure
_DIGITS = re.compile(r"[0-9]{1,19}")  # int() of a longer text is slow, or refused
_SHORT_YEAR = re.compile(r"([0-9]{1,3})-")


class QueryError(ValueError):
    """A query parameter that cannot be used; the message says which and why."""


def statuses(text: str | None) -> tuple[str, ...]:
    """`runtimeStatus=Running,Completed` (repeatable values joined by commas)."""
    if text is None:
        return ()
    parsed: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        if name not in RUNTIME_STATUSES:
            hint = next((s for s in RUNTIME_STATUSES if s.lower() == name.lower()), None)
            did_you_mean = f" (names are case-sensitive: {hint!r})" if hint else ""
            raise QueryError(
                f"runtimeStatus: {name!r} is not a runtime status{did_you_mean}; "
                f"use {', '.join(RUNTIME_STATUSES)}"
            )
        if name not in parsed:
            parsed.append(name)
    return tuple(parsed)


def moment(name: str, text: str | None) -> str | None:
    """An ISO 8601 time (a time without a zone is UTC), as stored; None when absent or empty."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    year = _SHORT_YEAR.match(value)
    if year:  # Python's strftime drops the leading zeros of years before 1000, as Azure allows
        value = year.group(1).zfill(4) + value[year.end(1) :]
    if not value.isascii():
        raise QueryError(f"{name}: not an ISO 8601 time: {text!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as error:
        raise QueryError(f"{name}: not an ISO 8601 time: {text!r}") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError as error:
        raise QueryError(f"{name}: {text!r} is outside the years 1 to 9999 in UTC") from error
    # The stored form (events.format_time), with the year zero-padded as strftime does not.
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def top(text: str | None) -> int | None:
    """The page size: ASCII digits, 1 to 2147483647."""
    if text is None or text == "":
        return None
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= TOP_MAX:
        raise QueryError(f"top must be a whole number from 1 to {TOP_MAX}, not {text!r}")
    return int(text)


def flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean parameter: `true` or `false` in any case (as .NET's bool.TryParse reads it)."""
    value = query.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise QueryError(f"{name} must be true or false, not {value!r}")
    return lowered == "true"


def instance_query(query: Mapping[str, str]) -> InstanceQuery:
    """The filters of `GET /instances` and `DELETE /instances`."""
    return InstanceQuery(
        created_from=moment("createdTimeFrom", query.get("createdTimeFrom")),
        created_to=moment("createdTimeTo", query.get("createdTimeTo")),
        statuses=statuses(_joined(query, "runtimeStatus")),
        prefix=query.get("instanceIdPrefix") or None,
    )


def purge_query(query: Mapping[str, str]) -> InstanceQuery:
    """The filters of a purge: `createdTimeFrom` required (as in Azure), finished instances only.

    A non-terminal status is refused rather than dropped (Azure Storage drops it, and an empty
    status list then purges every status); with no status, every terminal status is purged.
    """
    parsed = instance_query(query)
    if parsed.created_from is None:
        raise QueryError("Please provide value for 'createdTimeFrom' parameter.")
    active = [s for s in parsed.statuses if s not in TERMINAL_STATUSES]
    if active:
        raise QueryError(
            f"runtimeStatus: only finished instances can be purged, not {', '.join(active)}; "
            f"use {', '.join(TERMINAL_STATUSES)}"
        )
    return InstanceQuery(
        parsed.created_from, parsed.created_to, parsed.statuses or TERMINAL_STATUSES, parsed.prefix
    )


def _joined(query: Mapping[str, str], name: str) -> str | None:
    getall = getattr(query, "getall", None)
    if getall is None:
        return query.get(name)
    values = getall(name, [])
    return ",".join(values) if values else None
