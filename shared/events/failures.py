"""Failures that a retry can fix (the lake is unreachable) told from those it cannot (the data,
a bug), and the isolation of the items that fail for good, so that the others still land.

A deterministic failure retried forever stalls its hub partition or poisons its file: the
ingest and landing services bisect the rows that failed, land the rest, and dead-letter the
rows that fail alone (`Reason.PROCESSING_ERROR`). A transient failure propagates, so that the
batch or file is delivered again (the retry policy backs off between deliveries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deltalake.exceptions import DeltaError

from shared.events.errors import EventRejected, Reason
from shared.lakehouse.bronze import LakeWriteFailed

# Storage and network errors (ConnectionError and TimeoutError are OSErrors), deltalake's
# commit and object store errors, and commits that kept failing: the same input may succeed.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    LakeWriteFailed,
    OSError,
    DeltaError,
    MemoryError,
)


def is_transient(error: BaseException) -> bool:
    """Whether trying the same input again may succeed."""
    return isinstance(error, TRANSIENT_ERRORS) or not isinstance(error, Exception)


def isolate(
    items: Sequence[int],
    attempt: Callable[[list[int]], None],
    failed: Callable[[int, Exception], None] | None = None,
) -> list[tuple[int, Exception]]:
    """Run `attempt` over all `items`; when it fails deterministically, over each half in
    turn (in order), down to single items. Returns the items that failed alone, with their
    error, each also passed to `failed` as soon as it is found (before the items after it are
    attempted); a transient error (`is_transient`) propagates."""
    chosen = list(items)
    if not chosen:
        return []
    try:
        attempt(chosen)
        return []
    except Exception as error:
        if is_transient(error):
            raise
        if len(chosen) == 1:
            if failed is not None:
                failed(chosen[0], error)
            return [(chosen[0], error)]
    middle = len(chosen) // 2
    return isolate(chosen[:middle], attempt, failed) + isolate(chosen[middle:], attempt, failed)


# The app id suffix of dead letters of rows the appender refused: they are committed as they
# are found, before the rows after them (whose commit moves the rows' txn past them), under
# their own txn, versioned by their position, so that a redelivery neither loses nor repeats one.
UNLANDABLE = "#unlandable"


def processing_error(error: Exception, contract: str | None) -> EventRejected:
    """The dead-letter entry's error for an item that failed alone: the error's type and text
    (the dead-letter builder scrubs card numbers from it)."""
    return EventRejected(
        Reason.PROCESSING_ERROR, f"could not land: {type(error).__name__}: {error}", contract
    )
