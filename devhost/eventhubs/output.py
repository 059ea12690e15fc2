"""The `eventHub` output binding: what a function sets on `func.Out` becomes events."""

from __future__ import annotations

import json
from typing import Any

from embedded.eventlog.log import NewEvent


class OutputValueError(TypeError):
    """A value set on an eventHub output binding that cannot become events."""


def _event(value: Any, binding: str) -> NewEvent:
    if isinstance(value, str):
        return NewEvent(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray | memoryview):
        return NewEvent(bytes(value))
    if isinstance(value, dict | int | float | bool) or value is None:
        # The host turns other JSON values into one event holding their JSON text.
        return NewEvent(json.dumps(value).encode("utf-8"))
    raise OutputValueError(
        f"output binding {binding!r}: cannot send a {type(value).__name__} as an event; "
        "set a str, bytes, or a list of them"
    )


def output_events(value: Any, binding: str) -> list[NewEvent]:
    """The events for an output value: one per list item, or one for a single value."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [_event(item, binding) for item in value]
    return [_event(value, binding)]
