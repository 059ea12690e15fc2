"""A timer's schedule status (Last, Next, LastUpdated) as the host keeps it; missed runs."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from devhost.timer.schedule import Schedule

# What the host writes for a time it has not recorded yet (DateTime.MinValue).
UNSET_TIME = "0001-01-01T00:00:00+00:00"
_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]")


class StatusFileError(ValueError):
    """A persisted schedule status cannot be read."""


@dataclass(frozen=True)
class ScheduleStatus:
    """When a timer last ran, when it runs next, and when the record last changed."""

    last: datetime | None
    next: datetime | None
    last_updated: datetime | None

    def to_json(self, zone: tzinfo) -> dict[str, str | None]:
        """The host's shape: ISO 8601 times with the offset of the timer's time zone."""
        return {
            "Last": _format(self.last, zone) or UNSET_TIME,
            "Next": _format(self.next, zone),
            "LastUpdated": _format(self.last_updated, zone) or UNSET_TIME,
        }

    @classmethod
    def from_json(cls, document: Any) -> ScheduleStatus:
        if not isinstance(document, dict):
            raise StatusFileError("the status must be a JSON object with Last, Next, LastUpdated")
        return cls(
            last=_parse(document, "Last"),
            next=_parse(document, "Next"),
            last_updated=_parse(document, "LastUpdated"),
        )


def _format(moment: datetime | None, zone: tzinfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def _parse(document: dict[str, Any], key: str) -> datetime | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise StatusFileError(f"{key} must be an ISO 8601 string, not {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise StatusFileError(f"{key}={value!r} is not an ISO 8601 time") from error
    if moment.year <= 1:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Reconciled:
    """A stored status checked against the schedule at start-up."""

    status: ScheduleStatus
    past_due: bool
    changed: bool


def reconcile(stored: ScheduleStatus | None, schedule: Schedule, now: datetime) -> Reconciled:
    """Decide at start-up whether a timer missed a run, as the host's ScheduleMonitor does.

    A new timer records its next occurrence. A recorded `Next` that no longer follows from
    `Last` (or `LastUpdated`) means the schedule changed: it is recomputed, and if that time has
    passed too, from now, so a schedule change never counts as a missed run. Otherwise a `Next`
    earlier than now is a missed run: the timer runs once at once with `past_due`.
    """
    if stored is None:
        status = ScheduleStatus(last=None, next=schedule.next_after(now), last_updated=now)
        return Reconciled(status, past_due=False, changed=True)
    base = stored.last or stored.last_updated or now
    expected = schedule.next_after(base)
    status, changed = stored, False
    if stored.next != expected:
        if expected is not None and now > expected:
            base, expected = now, schedule.next_after(now)
        status = ScheduleStatus(last=None, next=expected, last_updated=base)
        changed = True
    past_due = status.next is not None and now > status.next
    return Reconciled(status, past_due=past_due, changed=changed)


class StatusStore:
    """Schedule statuses as JSON files, one per timer function, under one directory."""

    def __init__(self, directory: Path, zone: tzinfo) -> None:
        self.directory = directory
        self._zone = zone

    def path(self, function: str) -> Path:
        return self.directory / f"{_UNSAFE_FILE_CHARACTERS.sub('_', function)}.json"

    def load(self, function: str) -> ScheduleStatus | None:
        """The stored status, None if there is none; StatusFileError if it is unreadable."""
        path = self.path(function)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise StatusFileError(f"{path}: {error}") from error
        try:
            return ScheduleStatus.from_json(json.loads(text))
        except (json.JSONDecodeError, StatusFileError) as error:
            raise StatusFileError(f"{path}: {error}") from error

    def save(self, function: str, status: ScheduleStatus) -> None:
        """Replace the stored status atomically: a crash leaves the old file or the new one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(function)
        document = json.dumps(status.to_json(self._zone), indent=2) + "\n"
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{path.stem}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(document)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
