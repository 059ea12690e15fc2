"""Lake storage readiness: a local folder, or ADLS Gen2 (Azurite in tests) through deltalake."""

from __future__ import annotations

import os
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import Adapter
from shared.health import Readiness
from shared.lakehouse.access import LakeAccess


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


class AdlsLakeProbe:
    """The lake is on ADLS Gen2 (or Azurite): ready when its root can be listed.

    The storage handler is built once per generation of the lake's access options (a new
    token makes a new generation), not once per check."""

    backend = "lake"
    adapter = Adapter.AZURE

    def __init__(self, root: str, access: LakeAccess) -> None:
        self.root = root
        self.access = access
        self._handler: tuple[int, Any] | None = None
        self._lock = threading.Lock()

    def check(self) -> Readiness:
        from pyarrow.fs import FileSelector

        try:
            # Listing proves the account, container and credential; a missing root is fine.
            handler = self._current_handler()
            entries = handler.get_file_info_selector(FileSelector("", allow_not_found=True))
        except Exception as error:  # any storage error means the lake cannot serve
            detail = re.sub(r"\x1b\[[0-9;]*m|\s+", " ", str(error)).strip()
            return Readiness(False, f"{self.root}: {type(error).__name__}: {detail}")
        return Readiness(True, f"{self.root} ({len(entries)} entries at the root)")

    def _current_handler(self) -> Any:
        from deltalake.fs import DeltaStorageHandler

        options, generation = self.access.current()
        with self._lock:
            if self._handler is None or self._handler[0] != generation:
                self._handler = (generation, DeltaStorageHandler(self.root, options))
            return self._handler[1]
