"""The blob trigger's value: a `func.InputStream` that streams from the file, or its content."""

from __future__ import annotations

import io
import mimetypes
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from azure.functions.blob import InputStream

from devhost.blob.store import BlobFile, version_tag


class BlobChangedError(RuntimeError):
    """The blob changed or vanished between the scan and the open; a later scan will see it."""


class BlobDecodeError(ValueError):
    """The function takes `str`, but the blob is not UTF-8 text."""


class BlobStream(InputStream):
    """A read-only stream over one version of a local blob, read on demand in chunks.

    It is the worker's `azure.functions.blob.InputStream` (so a `func.InputStream` too),
    but where the worker holds the whole blob in memory this reads the file on demand, so
    a function can process files larger than memory. Like the worker's, it is not seekable.
    """

    def __init__(
        self,
        file: IO[bytes],
        *,
        name: str,
        length: int,
        uri: str,
        blob_properties: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        # Not InputStream.__init__: that copies the whole blob into a BytesIO.
        io.BufferedIOBase.__init__(self)
        self._file = file
        self._blob_name = name
        self._blob_length = length
        self._blob_uri = uri
        self._blob_props = dict(blob_properties or {})
        self._blob_metadata = dict(metadata or {})

    @property
    def name(self) -> str:
        return self._blob_name

    @property
    def length(self) -> int:
        return self._blob_length

    @property
    def uri(self) -> str:
        return self._blob_uri

    @property
    def blob_properties(self) -> dict[str, Any]:
        return self._blob_props

    @property
    def metadata(self) -> dict[str, str]:
        return self._blob_metadata

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        return self._file.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        self._check_open()
        read1 = getattr(self._file, "read1", None)
        return bytes(read1(size)) if read1 is not None else self._file.read(size)

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        readinto = getattr(self._file, "readinto", None)
        if readinto is not None:
            return int(readinto(buffer))
        view = memoryview(buffer).cast("B")
        data = self._file.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readinto1(self, buffer: Any) -> int:
        return self.readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        self._check_open()
        return self._file.readline(-1 if size is None else size)

    def readable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed blob stream")


def open_blob(blob: BlobFile, uri: str) -> BlobStream:
    """Open the scanned version of a blob, or raise BlobChangedError if it is gone or changed."""
    try:
        # No link is followed here: the scan resolved the ones allowed (`BlobStore`), and a
        # file swapped for a link since then is not read.
        descriptor = os.open(blob.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        file = open(descriptor, "rb")  # noqa: SIM115 - the stream owns and closes it
    except (FileNotFoundError, IsADirectoryError) as error:
        raise BlobChangedError(f"{blob.blob_path} vanished before it could be read") from error
    except OSError as error:  # ELOOP: it became a link
        raise BlobChangedError(f"{blob.blob_path} changed after it was scanned") from error
    stat = os.fstat(file.fileno())
    if version_tag(stat.st_size, stat.st_mtime_ns) != blob.etag:
        file.close()
        raise BlobChangedError(f"{blob.blob_path} changed after it was scanned")
    return BlobStream(
        file,
        name=blob.blob_path,
        length=blob.size,
        uri=uri,
        blob_properties=blob_properties(blob),
        metadata={},
    )


def blob_properties(blob: BlobFile) -> dict[str, Any]:
    """The subset of Azure's blob `Properties` trigger metadata a local file can supply."""
    content_type, encoding = mimetypes.guess_type(blob.name)
    modified = datetime.fromtimestamp(blob.mtime_ns / 1e9, UTC).isoformat()
    properties: dict[str, Any] = {
        "BlobType": "BlockBlob",
        "ContentLength": blob.size,
        "Length": blob.size,
        "ContentType": content_type or "application/octet-stream",
        "ETag": blob.etag,
        "LastModified": modified,
    }
    if encoding is not None:
        properties["ContentEncoding"] = encoding
    return properties


def wants_content(annotation: Any) -> type[bytes] | type[str] | None:
    """`bytes` or `str` if the parameter takes the whole content, None for a stream."""
    if annotation in (bytes, bytearray):
        return bytes
    if annotation is str:
        return str
    return None


def read_content(stream: BlobStream, kind: type[bytes] | type[str]) -> bytes | str:
    """Read the whole blob, as the worker does for a `bytes` or `str` parameter."""
    data = stream.read()
    if kind is bytes:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BlobDecodeError(
            f"{stream.name}: the function takes str but the blob is not UTF-8"
            f" ({error.reason} at byte {error.start}); annotate it as bytes or"
            " func.InputStream to read binary blobs"
        ) from error


def local_uri(path: Path) -> str:
    """A URL for a local blob file, `file:///.../blobs/container/name`."""
    return path.resolve().as_uri()
