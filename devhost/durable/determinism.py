"""Determinism checking: a replay must schedule what the history recorded, in the same order."""

from __future__ import annotations

from devhost.durable.actions import Action, ActionType


class NonDeterministicOrchestration(RuntimeError):
    """A replay scheduled something other than what the history recorded."""


def divergence(actions: list[Action], recorded: list[tuple[int, str]]) -> str | None:
    """The error for the first replayed action that differs from its record, or None."""
    for index, action in enumerate(actions[: len(recorded)]):
        if action.signature != recorded[index]:
            return nondeterminism_error(index, action, recorded[index])
    return None


def nondeterminism_error(index: int, action: Action, recorded: tuple[int, str]) -> str:
    kind, name = recorded
    label = ActionType(kind).name.title().replace("_", "")
    before = f"{label} {name!r}" if name else label
    return (
        f"{NonDeterministicOrchestration.__name__}: Non-deterministic workflow detected: "
        f"action #{index} is now {action.describe()} but the history recorded {before}. "
        "Orchestrator code must be deterministic: no I/O, random values or wall-clock time; "
        "use the context's APIs (current_utc_datetime, new_uuid) instead."
    )
