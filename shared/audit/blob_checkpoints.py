"""Audit checkpoints in Azure Blob Storage: one blob per closed hour, in a container whose
time-based immutability policy (declared by the deployment) keeps every blob from being changed
or deleted until the policy lets it.

A checkpoint is written once: the upload refuses to overwrite (`If-None-Match: *`), so a
second closer of the same hour, or a forger, gets nothing in; under the policy not even the
account's owner can rewrite one. The blob holds the same JSON line as the local file.
"""

from __future__ import annotations

import threading

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from embedded.audit.checkpoints import Checkpoint, parse_checkpoint

SUFFIX = ".json"


class BlobCheckpoints:
    """`CheckpointStore` on a blob container (`ContainerClient`, with an Entra ID credential
    in Azure); the partitions it has seen are remembered, so listing happens on reads only."""

    def __init__(self, container: ContainerClient) -> None:
        self.container = container
        self._lock = threading.Lock()

    def written(self) -> dict[str, Checkpoint]:
        found: dict[str, Checkpoint] = {}
        for blob in self.container.list_blobs():
            name = str(blob.name)
            if not name.endswith(SUFFIX):
                continue
            text = self.container.download_blob(name).readall().decode("utf-8")
            checkpoint = parse_checkpoint(text)
            if checkpoint.partition + SUFFIX == name:  # a blob named for its own hour only
                found[checkpoint.partition] = checkpoint
        return found

    def write(self, checkpoint: Checkpoint) -> bool:
        with self._lock:
            try:
                self.container.upload_blob(
                    checkpoint.partition + SUFFIX,
                    checkpoint.line().encode("utf-8"),
                    overwrite=False,
                )
            except ResourceExistsError:
                return False
            return True
