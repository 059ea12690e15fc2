"""One platform process per local lake: an exclusive lock held for the process's lifetime.

The `txn` versions in a lake's bronze tables are positions in one event log (hub, consumer group
and partition). A second process landing into the same lake from another event log (a second
devhost with its own data dir but the same `LAKE_URI`) would have its batches taken for ones
already landed, and dropped, and both would run the same maintenance and pipeline. In Azure every
instance reads the same Event Hubs, so sharing the lake is right there; a local lake is written
by one process, and a second refuses to start, naming the first.

The lock is an advisory `flock` on `<lake>/.platform.lock`. The kernel drops it when the process
ends, even on SIGKILL. Within a process it is taken once per lake and kept: building the
platform again (tests do) finds it held. Readers (any Delta reader) take no lock.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no flock; the lake runs without the guard there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".platform.lock"

_held: dict[Path, IO[str]] = {}  # this process's locks, kept until it ends
_guard = threading.Lock()


@atexit.register
def _close_all() -> None:  # the process ends: the kernel drops the locks, close the files too
    with _guard:
        while _held:
            _held.popitem()[1].close()


class LakeInUse(RuntimeError):
    """Another process writes this local lake."""


def hold_local_lake(root: Path) -> None:
    """Take the lake's lock for the rest of the process, or raise LakeInUse naming its holder."""
    root = root.resolve()
    if fcntl is None:
        return
    with _guard:
        if root in _held:
            return
        try:
            root.mkdir(parents=True, exist_ok=True)
            file = open(root / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held for good
        except OSError:
            return  # nothing can write this lake either; its readiness probe reports why
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            pid, _, command = file.read().partition("\n")
            file.close()
            raise LakeInUse(
                f"the lake {root} is written by another process (pid {pid.strip() or 'unknown'}: "
                f"{command.strip() or 'unknown command'}); stop it, or give this one a lake of "
                f"its own: the devhost's --data-dir DIR (its lake is DIR/lake unless LAKE_URI "
                f"is set), or LAKE_URI"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n{' '.join(sys.argv)}\n")
        file.flush()
        _held[root] = file
