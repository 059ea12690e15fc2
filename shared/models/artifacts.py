"""Model files, beside the lake: `<LAKE_URI>/models/<name>/<version>/<file>`, written once.

A model version's files (the ONNX graph, the native model, its card) never change once
written: a second write of the same path is refused (`ArtifactExists`), locally with an
exclusive create, on ADLS Gen2 with the blob service's `If-None-Match: *`. The registry names
a version's folder in its `source`; edge devices download the ONNX file from there through
the API.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared.config import Adapter, LakeSettings

FOLDER = "models"
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ArtifactError(Exception):
    """A model file could not be written or read."""


class ArtifactExists(ArtifactError):
    """The path holds a file already: model files are written once."""


class ArtifactNotFound(ArtifactError, LookupError):
    """No file at the path."""


class ArtifactStore(Protocol):
    def put(self, path: str, data: bytes) -> str: ...

    def get(self, path: str) -> bytes: ...

    def uri(self, path: str) -> str: ...


def artifact_path(name: str, version: int, file: str) -> str:
    """The path of a version's file, checked segment by segment (no `..`, no slashes)."""
    for segment in (name, file):
        if not _SEGMENT.fullmatch(segment) or ".." in segment:
            raise ArtifactError(f"not a valid artifact path segment: {segment[:80]!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArtifactError("a version is a positive integer")
    return f"{name}/{version}/{file}"


class LocalArtifacts:
    """Files under a local folder, each created exclusively and fsync'd before it counts."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, path: str, data: bytes) -> str:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        with partial.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(partial, target)  # fails if the target exists: never overwritten
        except FileExistsError:
            raise ArtifactExists(f"{path} exists") from None
        finally:
            partial.unlink(missing_ok=True)
        return self.uri(path)

    def get(self, path: str) -> bytes:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(path) from None

    def uri(self, path: str) -> str:
        return (self.root / path).as_posix()


class BlobArtifacts:
    """Blobs in the lake's container (its blob endpoint), under `<lake path>/models/`."""

    def __init__(self, container: ContainerClient, prefix: str, base_uri: str) -> None:
        self.container = container
        self.prefix = prefix.strip("/")
        self.base_uri = base_uri.rstrip("/")

    def _name(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def put(self, path: str, data: bytes) -> str:
        try:
            self.container.upload_blob(self._name(path), data, overwrite=False)
        except ResourceExistsError:
            raise ArtifactExists(f"{path} exists") from None
        return self.uri(path)

    def get(self, path: str) -> bytes:
        try:
            return bytes(self.container.download_blob(self._name(path)).readall())
        except ResourceNotFoundError:
            raise ArtifactNotFound(path) from None

    def uri(self, path: str) -> str:
        return f"{self.base_uri}/{path}"


def open_artifacts(lake: LakeSettings) -> ArtifactStore:
    """The model files' store for the lake's settings: a local folder beside the tables, or
    the ADLS Gen2 account's blob endpoint (Azurite's with `LAKE_EMULATOR_ENDPOINT`)."""
    if lake.adapter is Adapter.LOCAL:
        return LocalArtifacts(Path(lake.uri) / FOLDER)
    rest = lake.uri.removeprefix("abfss://")
    container_name, _, host_and_path = rest.partition("@")
    host, _, lake_path = host_and_path.partition("/")
    account = host.split(".", 1)[0]
    prefix = "/".join(part for part in (lake_path.strip("/"), FOLDER) if part)
    if lake.emulator_endpoint:
        from shared.lakehouse.access import AZURITE_ACCOUNT, AZURITE_KEY

        url = f"{lake.emulator_endpoint}/{AZURITE_ACCOUNT}/{container_name}"
        client = ContainerClient.from_container_url(
            url, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
        )
    else:
        from azure.identity import DefaultAzureCredential

        url = f"https://{account}.blob.core.windows.net/{container_name}"
        client = ContainerClient.from_container_url(url, DefaultAzureCredential())
    return BlobArtifacts(client, prefix, f"{lake.uri.rstrip('/')}/{FOLDER}")
