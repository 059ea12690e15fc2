"""The devhost's console log lines are those `logging.Formatter` writes, errors and stacks
included, across the seconds it keeps."""

from __future__ import annotations

import logging
import sys

import pytest

from devhost.console_log import LOG_FORMAT, ConsoleFormatter

pytestmark = pytest.mark.unit


def record(level: int = logging.INFO, msg: str = "hello %s", **extra: object) -> logging.LogRecord:
    made = logging.getLogger("devhost.test").makeRecord(
        "devhost.test", level, __file__, 1, msg, ("world",), None, **extra
    )
    made.created, made.msecs = 1_700_000_000.25, 250.0
    return made


def test_lines_are_those_of_the_standard_formatter() -> None:
    ours, standard = ConsoleFormatter(), logging.Formatter(LOG_FORMAT)
    assert ours.format(record()) == standard.format(record())
    try:
        raise ValueError("boom")
    except ValueError:
        failed = sys.exc_info()
    with_error = [record(logging.ERROR, "failed %s") for _ in range(2)]
    for made in with_error:
        made.exc_info, made.stack_info = failed, "Stack (most recent call last):\n  here"
    assert ours.format(with_error[0]) == standard.format(with_error[1])
    assert "ValueError: boom" in ours.format(with_error[0])


def test_the_kept_second_changes_with_the_records() -> None:
    ours, standard = ConsoleFormatter(), logging.Formatter(LOG_FORMAT)
    for created in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.0, 1_700_000_000.5):
        made = record()
        made.created, made.msecs = created, (created % 1) * 1000
        assert ours.format(made) == standard.format(made)
