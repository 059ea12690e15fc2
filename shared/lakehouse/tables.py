"""Opening a Delta table while other processes commit to it.

A local `_delta_log` is a directory, and a directory listed while files are created in it
(ext4 returns entries in hash order) may show a commit without the one before it. deltalake then
refuses the log ("Expected contiguous commit files, but found gap", or after a checkpoint "Invalid
Checkpoint: Gap between checkpoint version 200 and next commit 204"), although nothing is wrong
with it: listed again, it is whole. Object stores (ADLS) list in name order and never show such
a gap. Readers of tables that are being written open them here, which lists again.
"""

from __future__ import annotations

import time

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

LISTING_GAPS = ("Expected contiguous commit files", "Gap between checkpoint version")
ATTEMPTS = 6


def open_table(
    uri: str, *, version: int | None = None, storage_options: dict[str, str] | None = None
) -> DeltaTable:
    """`DeltaTable(uri, ...)`, listing the log again when a listing caught commits landing;
    TableNotFoundError and every other error are raised at once."""
    for attempt in range(1, ATTEMPTS):
        try:
            return DeltaTable(uri, version=version, storage_options=storage_options)
        except DeltaError as error:
            if not any(gap in str(error) for gap in LISTING_GAPS):
                raise
            time.sleep(0.002 * 2**attempt)
    return DeltaTable(uri, version=version, storage_options=storage_options)
