"""A landing file as the blob trigger names it: its path, event type, version and arrival time."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

LOCAL_NAMESPACE = "local"


class NotALandingFile(ValueError):
    """The trigger gave no usable blob name or version; exactly-once landing needs both."""


@dataclass(frozen=True)
class LandingFile:
    """One version of a blob in the landing container, and the stream of its bytes.

    `path` is `container/name` as the trigger's `BlobTrigger` metadata gives it, for example
    `landing/payment.transaction/2024/day1.csv`: the first folder under the container names
    the event type. `version` is the blob's ETag; `modified` its last-modified time, if known.
    """

    path: str
    version: str
    modified: dt.datetime | None
    namespace: str
    stream: IO[bytes]

    @property
    def container(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def event_type(self) -> str | None:
        """The folder under the container, or None for a file directly in the container."""
        parts = self.path.split("/")
        return parts[1] if len(parts) >= 3 and parts[1] else None

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.path).suffix.lower()

    @property
    def app_id(self) -> str:
        """The Delta application transaction id of this version of the file."""
        return f"landing:{self.namespace}/{self.path}@{self.version}"


def landing_file(
    name: str | None,
    uri: str | None,
    properties: Mapping[str, Any] | None,
    stream: IO[bytes],
) -> LandingFile:
    """The landing file of a blob trigger's `name`, `uri` and `blob_properties`; raises
    NotALandingFile when the name, or both the ETag and the last-modified time, are missing."""
    path = (name or "").strip("/")
    if "/" not in path:
        raise NotALandingFile(f"the blob trigger gave no container/name path (got {name!r})")
    props = properties or {}
    modified = _moment(props.get("LastModified"))
    version = _etag(props.get("ETag") or props.get("Etag"))
    if version is None:
        length = props.get("ContentLength") or props.get("Length")
        if modified is None:
            raise NotALandingFile(
                f"{path}: the blob properties have neither ETag nor LastModified, so the"
                " version of the file cannot be told apart from the next one"
            )
        version = f"{modified.isoformat()}/{length}"
    return LandingFile(path, version, modified, namespace_of(uri), stream)


def namespace_of(uri: str | None) -> str:
    """The storage account of a blob URL (`https://<account>.blob.core.windows.net/...`, or
    Azurite's `http://127.0.0.1:10000/<account>/...`); `local` for the devhost's files."""
    parts = urlsplit(uri or "")
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return LOCAL_NAMESPACE
    if _is_address(host) or host == "localhost":
        account = parts.path.strip("/").split("/", 1)[0]
        return account.lower() or LOCAL_NAMESPACE
    return host.split(".", 1)[0].lower()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _etag(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    return tag or None


def _moment(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            try:  # RFC 1123, as the Last-Modified HTTP header has it
                moment = dt.datetime.strptime(value.strip(), "%a, %d %b %Y %H:%M:%S GMT")
            except ValueError:
                return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)
