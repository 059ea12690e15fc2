"""Log records scrubbed of card numbers as they are made, whoever makes them.

The platform installs the scrubber once it has its pseudonym key (`shared.bootstrap`): a log
record factory, so every record of the process passes through it, the host's included (the
devhost's invocation lines carry blob names), before any handler or exporter sees it. The
message is formatted, scrubbed, and kept as text; a traceback and a stack are formatted and
scrubbed too, since exception messages quote values.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

Scrub = Callable[[str], str]

_lock = threading.Lock()
_scrub: Scrub | None = None
_base_factory: Callable[..., logging.LogRecord] | None = None
_formatter = logging.Formatter()


def install_log_scrubber(scrub: Scrub) -> None:
    """Scrub every log record made from now on with `scrub` (replacing an earlier one)."""
    global _scrub, _base_factory
    with _lock:
        _scrub = scrub
        if _base_factory is None:
            _base_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_make_record)


def remove_log_scrubber() -> None:
    """Put back the factory found when the scrubber was installed (for tests)."""
    global _scrub, _base_factory
    with _lock:
        if _base_factory is not None:
            logging.setLogRecordFactory(_base_factory)
        _scrub, _base_factory = None, None


def _make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    base, scrub = _base_factory, _scrub
    record = (base or logging.LogRecord)(*args, **kwargs)
    if scrub is None:
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler would print the raw arguments
        message = f"{record.msg} (arguments that did not fit it: {record.args!r})"
    cleaned = scrub(message)
    if cleaned != message or record.args:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = scrub(_formatter.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
    return record
