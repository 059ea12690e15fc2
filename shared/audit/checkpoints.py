"""Where the last hash of each closed hour of the audit chain is kept, out of the chain's reach.

The port is `CheckpointStore`. Locally, `FileCheckpoints` appends to
`<data dir>/audit/checkpoints.jsonl` (`embedded.audit.checkpoints`: one fsync'd JSON line per
closed partition, never rewritten), the file `python -m devhost audit verify` reads. In Azure
the same lines belong in a blob container with a time-based immutability policy (its adapter
comes with the deploy issue, which declares the container).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from embedded.audit.checkpoints import Checkpoint, append_checkpoint, read_checkpoints


class CheckpointStore(Protocol):
    def written(self) -> Mapping[str, Checkpoint]:
        """Every checkpoint written, by partition (the first written for each)."""
        ...

    def write(self, checkpoint: Checkpoint) -> bool:
        """Keep the checkpoint unless its partition has one; whether it was written."""
        ...


class FileCheckpoints:
    """Checkpoints in an append-only JSON Lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def written(self) -> dict[str, Checkpoint]:
        return read_checkpoints(self.path)

    def write(self, checkpoint: Checkpoint) -> bool:
        with self._lock:
            if checkpoint.partition in read_checkpoints(self.path):
                return False
            append_checkpoint(self.path, checkpoint)
            return True
