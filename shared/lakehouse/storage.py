"""Lake storage readiness: the local folder adapter (ADLS Gen2 arrives with its own probe)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from shared.config import Adapter
from shared.health import Readiness


@dataclass(frozen=True)
class LocalLakeProbe:
    """The lake is a local folder: ready when it can be created and written."""

    root: Path
    backend: str = "lake"
    adapter: Adapter = Adapter.LOCAL

    def check(self) -> Readiness:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            marker = self.root / f".ready-{uuid.uuid4().hex}"
            marker.write_bytes(b"")
            marker.unlink()
        except OSError as error:
            return Readiness(False, f"{self.root}: {error.strerror or error}")
        free = _free_bytes(self.root)
        return Readiness(True, f"{self.root} ({free // 2**20} MiB free)")


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
