"""A faster, equivalent timestamp parser for the SDK's history events.

Profiling showed `dateutil.parser.parse` takes about 80% of the SDK's replay time. Every
timestamp the engine writes has one fixed ISO form, which `datetime.fromisoformat` reads in a
fraction of the time into the very same value (UTC as `dateutil.tz.tzutc()`); any other text
still goes to dateutil. The SDK's replay logic is untouched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dateutil.tz import tzutc

HISTORY_EVENT_MODULE = "azure.durable_functions.models.history.HistoryEvent"
_UTC = tzutc()


def fast_parser(fallback: Callable[..., datetime]) -> Callable[..., datetime]:
    """Parse `YYYY-MM-DDTHH:MM:SS.ffffffZ` directly and anything else with `fallback`."""

    def parse(text: Any, *args: Any, **kwargs: Any) -> datetime:
        if (
            not args
            and not kwargs
            and isinstance(text, str)
            and len(text) == 27
            and text[10] == "T"
            and text[19] == "."
            and text[26] == "Z"
        ):
            try:
                return datetime.fromisoformat(text[:26]).replace(tzinfo=_UTC)
            except ValueError:
                pass
        return fallback(text, *args, **kwargs)

    parse.devhost_fast = True  # type: ignore[attr-defined]
    return parse


def install() -> bool:
    """Install the parser into the SDK's history module once; False if it is not loaded."""
    __import__(HISTORY_EVENT_MODULE)
    module = sys.modules.get(HISTORY_EVENT_MODULE)
    current = getattr(module, "dt_parse", None)
    if module is None or current is None:
        return False
    if not getattr(current, "devhost_fast", False):
        module.dt_parse = fast_parser(current)  # type: ignore[attr-defined]
    return True
