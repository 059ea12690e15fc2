"""One devhost per app and data dir: an exclusive lock held for the host's lifetime.

Two hosts of the same app on one data dir would both fire every timer, both consume every Event
Hubs partition and both run the app's Durable task hub. In Azure, leases in the storage account
decide which instance of an app does each of these; the devhost serves one machine, so a second
host of the same app on the same data dir refuses to start instead, naming the first. Different
apps may share a data dir (each keeps its own task hub, as apps sharing a storage account do).

The lock is an advisory `flock` on `<data dir>/devhost/locks/<app>.lock`, where `<app>` stands
for the app's folder (its resolved path), as a host id stands for an app in Azure. The kernel
drops it when the process ends, even on SIGKILL, so a crashed host never blocks the next one.
Other processes (publishers writing to the event log, `python -m devhost instances`) do not
take it. `--data-dir` moves all of an app's state, so a second host given its own is safe; an
app that keeps state elsewhere guards it itself (the platform locks its lake).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO

from devhost.errors import StartupError

try:
    import fcntl
except ImportError:  # Windows: no flock; the devhost runs without the guard there
    fcntl = None  # type: ignore[assignment]

LOCKS = Path("devhost") / "locks"


class AppAlreadyRunning(StartupError):
    """Another devhost runs the same app on the same data dir."""


class HostLock:
    """Hold with `acquire()`; `release()` (or the process ending) lets the next host in."""

    def __init__(self, data_dir: Path, script_root: Path) -> None:
        self.data_dir = data_dir
        self.script_root = script_root.resolve()
        app = hashlib.sha256(str(self.script_root).encode("utf-8", "surrogatepass"))
        self.path = data_dir / LOCKS / f"{self.script_root.name[:40]}-{app.hexdigest()[:12]}.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise AppAlreadyRunning naming the process that holds it."""
        if fcntl is None or self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.readline().strip() or "unknown"
            file.close()
            raise AppAlreadyRunning(
                f"another devhost (pid {holder}) is running {self.script_root} on the data dir "
                f"{self.data_dir}; stop it, or give this one its own with --data-dir"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n{self.script_root}\n")
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is None:
            return
        file, self._file = self._file, None
        file.close()  # closing the last descriptor drops the flock
