"""Why an event or a request is refused: typed errors, each with a stable reason code."""

from __future__ import annotations

from enum import StrEnum

MAX_MESSAGE_CHARS = 300


class Reason(StrEnum):
    """Stable codes for rejected events, as they appear in responses and the dead-letter table."""

    NOT_UTF8 = "not_utf8"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_EVENT = "not_an_event"
    INVALID_ENVELOPE = "invalid_envelope"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_VERSION = "unknown_version"
    INVALID_DATA = "invalid_data"
    OUT_OF_RANGE = "out_of_range"  # a value the lake cannot hold, or a time outside the window
    PROCESSING_ERROR = "processing_error"  # valid as far as checks go, yet it could not land
    UNREADABLE_RECORD = "unreadable_record"  # a landing file's record that could not be read
    UNSUPPORTED_FILE = "unsupported_file"  # a landing file of an unknown format, or unreadable


def bounded(message: str) -> str:
    """Cap a message's length: validation errors may quote a (possibly huge) offending value."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + "…"


class EventRejected(ValueError):
    """One event breaks the envelope or its contract; the message never quotes a PII value."""

    def __init__(self, reason: Reason, message: str, contract: str | None = None) -> None:
        self.reason = reason
        self.message = bounded(message)
        self.contract = contract
        super().__init__(f"{reason.value}: {self.message}")


class RequestRejected(ValueError):
    """A whole request is unusable; the trigger maps each kind to its HTTP status."""

    def __init__(self, message: str) -> None:
        self.message = bounded(message)
        super().__init__(self.message)


class MalformedRequest(RequestRejected):
    """The body is not what its content type says: not UTF-8, not JSON, not events."""


class RequestTooLarge(RequestRejected):
    """The body, inflated, or its number of events is over the limit."""


class UnsupportedContent(RequestRejected):
    """A content type, charset or content coding the intake does not take."""


class PublishFailed(RuntimeError):
    """The events could not be made durable in the hub; nothing may be reported as accepted."""
