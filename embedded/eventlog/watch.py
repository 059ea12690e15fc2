"""In-process notice of appends, so that consumers wake at once instead of at the next poll."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("embedded.eventlog")

AppendListener = Callable[[str, frozenset[int]], None]
_listeners: dict[str, list[AppendListener]] = {}
_listeners_lock = threading.Lock()


def watch_appends(path: str | Path, listener: AppendListener) -> Callable[[], None]:
    """Call `listener(hub, partitions)` after every append to the log at `path` made by this
    process (from any thread); returns the function that stops watching.

    Appends by other processes are not seen here; readers poll for those.
    """
    key = str(Path(path).resolve())
    with _listeners_lock:
        _listeners.setdefault(key, []).append(listener)

    def stop() -> None:
        with _listeners_lock:
            listeners = _listeners.get(key, [])
            if listener in listeners:
                listeners.remove(listener)

    return stop


def announce_append(path: Path, hub: str, partitions: frozenset[int]) -> None:
    """Tell this process's listeners of the (resolved) log `path` that `hub` grew."""
    with _listeners_lock:
        listeners = list(_listeners.get(str(path), ()))
    for listener in listeners:
        try:
            listener(hub, partitions)
        except Exception:
            # The events are committed; a failing listener only loses a wake-up and polls.
            log.exception("an append listener of %s failed", path)
