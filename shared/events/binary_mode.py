"""CloudEvents HTTP binary content mode: attributes in `ce-*` headers, the data as the body.

A binary-mode request is turned into the structured JSON event it stands for, which then goes
through exactly the validation of a structured one. Per the HTTP binding (3.1.3), header values
are percent-encoded UTF-8 (printable ASCII on the wire, a header once), and `Content-Type` is the
`datacontenttype`: this platform's contracts take JSON data only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

import msgspec

from shared.events.errors import MalformedRequest, UnsupportedContent
from shared.files.json_bytes import decode_any_json

HEADER_PREFIX = "ce-"
SPECVERSION_HEADER = "ce-specversion"
JSON_DATA = "application/json"
# Attributes the binding carries elsewhere (Content-Type, the body), never in a ce- header.
_NOT_HEADERS = frozenset(("data", "data_base64", "datacontenttype"))
# Printable ASCII but space, `"` and `%`, or a percent-escape (binding 1.0.2, 3.1.3.2). Being
# strict about spaces also refuses a header sent twice, which HTTP hosts join with ", ".
_ENCODED = re.compile(r"(?:[!#$&-~]|%[0-9A-Fa-f]{2})*")


def is_binary_mode(headers: Mapping[str, str]) -> bool:
    """Whether the request carries its attributes in headers (it has `ce-specversion`)."""
    return SPECVERSION_HEADER in headers


def structured_event(headers: Mapping[str, str], media: str, body: bytes) -> bytes:
    """The structured JSON event that a binary-mode request stands for.

    `headers` have lower-case names; `media` is the body's media type, lower-cased, without
    parameters. Raises UnsupportedContent for data that is not JSON, MalformedRequest for a
    header that is not percent-encoded UTF-8 or names an attribute the binding carries
    elsewhere, or a body that is not JSON.
    """
    if media != JSON_DATA:
        raise UnsupportedContent(
            f"binary-mode events carry JSON data: Content-Type must be {JSON_DATA}, "
            f"not {media or 'missing'}",
        )
    event: dict[str, object] = {}
    for name, value in headers.items():
        if not name.startswith(HEADER_PREFIX):
            continue
        attribute = name[len(HEADER_PREFIX) :]
        if attribute in _NOT_HEADERS:
            raise MalformedRequest(
                f"{name} is not a binary-mode header: {attribute} is the Content-Type or body"
            )
        event[attribute] = header_value(name, value)
    event["datacontenttype"] = JSON_DATA
    if body.strip():
        try:
            decode_any_json(body)  # one JSON value, so the body cannot add attributes
        except UnicodeDecodeError:
            raise MalformedRequest("the data is not valid UTF-8") from None
        except msgspec.DecodeError as error:
            raise MalformedRequest(f"the data is not valid JSON: {error}") from None
        except RecursionError:
            raise MalformedRequest("the data is nested too deeply") from None
        event["data"] = msgspec.Raw(body)
    return msgspec.json.encode(event)


def header_value(name: str, value: str) -> str:
    """A ce- header's value, percent-decoded; raises MalformedRequest unless it is
    printable ASCII, with space, `"`, `%` and any other character percent-encoded as UTF-8."""
    if not _ENCODED.fullmatch(value):
        raise MalformedRequest(
            f"{name} must be printable ASCII, with spaces, quotes, % and other characters "
            "percent-encoded as UTF-8 (or it was sent more than once)",
        )
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest(f"{name} is not percent-encoded UTF-8") from None
