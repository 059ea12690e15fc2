"""Data quality rules declared per contract, and their results as recorded per run.

Row rules (not-null, range, accepted values, pattern) judge each row and, when blocking,
send failing rows to quarantine. Table rules (freshness, row-count change) judge the batch and
only ever warn: quarantining a whole batch for being late would hide the very data that is late.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar


def _identifier(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _literal(value: str | int | float | Decimal) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class NotNull:
    column: str
    blocking: bool = True

    @property
    def name(self) -> str:
        return f"not_null:{self.column}"

    def failing(self) -> str:
        """A SQL predicate over the typed batch, true for each row that breaks the rule."""
        return f"{_identifier(self.column)} IS NULL"


@dataclass(frozen=True)
class Range:
    column: str
    min: int | float | Decimal | None = None
    max: int | float | Decimal | None = None
    blocking: bool = True

    @property
    def name(self) -> str:
        return f"range:{self.column}"

    def failing(self) -> str:
        column = _identifier(self.column)
        tests = []
        if self.min is not None:
            tests.append(f"{column} < {_literal(self.min)}")
        if self.max is not None:
            tests.append(f"{column} > {_literal(self.max)}")
        return f"coalesce({' OR '.join(tests) or 'false'}, false)"


@dataclass(frozen=True)
class AcceptedValues:
    column: str
    values: tuple[str, ...]
    blocking: bool = True

    @property
    def name(self) -> str:
        return f"accepted_values:{self.column}"

    def failing(self) -> str:
        accepted = ", ".join(_literal(value) for value in self.values)
        return f"coalesce({_identifier(self.column)} NOT IN ({accepted}), false)"


@dataclass(frozen=True)
class Matches:
    column: str
    pattern: str
    blocking: bool = True

    @property
    def name(self) -> str:
        return f"pattern:{self.column}"

    def failing(self) -> str:
        column = _identifier(self.column)
        return f"coalesce(NOT regexp_full_match({column}, {_literal(self.pattern)}), false)"


@dataclass(frozen=True)
class Castable:
    """Added for every typed column: a value that is present but will not convert is bad data."""

    column: str
    blocking: bool = True

    @property
    def name(self) -> str:
        return f"type:{self.column}"

    def failing(self) -> str:
        raw = _identifier(f"__raw_{self.column}")
        return f"({raw} IS NOT NULL AND {_identifier(self.column)} IS NULL)"


@dataclass(frozen=True)
class Freshness:
    """The newest event in the batch (or, with no new data, ever seen) is at most `max_age` old."""

    max_age: dt.timedelta
    column: str = "event_time"
    blocking: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return f"freshness:{self.column}"


@dataclass(frozen=True)
class RowCountChange:
    """The batch has at most `max_ratio` times more, or fewer, rows than the previous batch."""

    max_ratio: float
    blocking: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return "row_count_change"


RowRule = NotNull | Range | AcceptedValues | Matches | Castable
TableRule = Freshness | RowCountChange


@dataclass(frozen=True)
class CheckResult:
    """One rule's verdict on one run of one table."""

    rule: str
    blocking: bool
    rows_checked: int
    rows_failed: int
    passed: bool
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "blocking": self.blocking,
            "rows_checked": self.rows_checked,
            "rows_failed": self.rows_failed,
            "passed": self.passed,
            "detail": self.detail,
        }


def row_result(rule: RowRule, rows_checked: int, rows_failed: int) -> CheckResult:
    detail = f"{rows_failed} of {rows_checked} rows" if rows_failed else ""
    return CheckResult(
        rule.name, rule.blocking, rows_checked, rows_failed, rows_failed == 0, detail
    )


def freshness_result(
    rule: Freshness, newest: dt.datetime | None, now: dt.datetime, rows_checked: int
) -> CheckResult:
    if newest is None:
        return CheckResult(rule.name, False, rows_checked, 0, False, "no events seen yet")
    age = now - newest
    passed = age <= rule.max_age
    detail = f"newest {rule.column} {newest.isoformat()} is {age.total_seconds():.0f} s old"
    return CheckResult(rule.name, False, rows_checked, 0, passed, detail)


def row_count_result(rule: RowCountChange, rows: int, previous: int | None) -> CheckResult:
    if not previous:
        return CheckResult(rule.name, False, rows, 0, True, "no previous batch to compare")
    ratio = rows / previous
    passed = 1 / rule.max_ratio <= ratio <= rule.max_ratio
    return CheckResult(rule.name, False, rows, 0, passed, f"{rows} rows vs {previous} before")
