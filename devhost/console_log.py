"""The devhost's log lines on stderr: `LOG_FORMAT`, formatted for a line per invocation.

Every invocation logs a line, so under load the formatter's cost counts per request. This one
writes exactly what `logging.Formatter(LOG_FORMAT)` writes, with the text of the current second
kept instead of formatted again for every record, and the line put together directly rather
than through the `%` style's mapping (about a third of the formatting time).
"""

from __future__ import annotations

import logging
import time

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class ConsoleFormatter(logging.Formatter):
    """`logging.Formatter(LOG_FORMAT)`, cheaper."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)
        self._second = -1
        self._stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = f"{record.asctime} {record.levelname} {record.name} {record.message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            # Both set under the handler's lock, which formatting runs under.
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"  # as `default_msec_format` has it
