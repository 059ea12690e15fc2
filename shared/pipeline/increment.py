"""The bronze rows a run has not seen: the data files added after the watermark's Delta version.

Bronze is append-only, so the files of the current version that were not in the watermark's
version hold exactly the new rows. Should the old version be gone (log cleaned up) or the table
be compacted, the increment grows to files seen before; silver's MERGE makes that harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as pds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError


@dataclass(frozen=True)
class Increment:
    """New bronze data between two versions (`from_version` exclusive, None: from the start)."""

    from_version: int | None
    to_version: int
    dataset: pds.Dataset
    fragments: tuple[pds.Fragment, ...]
    file_rows: tuple[int, ...]

    @property
    def rows(self) -> int:
        return sum(self.file_rows)

    def chunks(self, max_rows: int) -> Iterator[pa.Table]:
        """The new rows in tables of about `max_rows` (whole files, so one may be larger)."""
        group: list[pds.Fragment] = []
        rows = 0
        for fragment, count in zip(self.fragments, self.file_rows, strict=True):
            group.append(fragment)
            rows += count
            if rows >= max_rows:
                yield self._read(group)
                group, rows = [], 0
        if group:
            yield self._read(group)

    def _read(self, fragments: list[pds.Fragment]) -> pa.Table:
        dataset = self.dataset
        assert isinstance(dataset, pds.FileSystemDataset)
        subset = pds.FileSystemDataset(
            fragments, dataset.schema, dataset.format, dataset.filesystem
        )
        return subset.to_table()


def _paths(table: DeltaTable) -> dict[str, int]:
    actions = pa.table(table.get_add_actions(flatten=True))
    return dict(
        zip(
            actions.column("path").to_pylist(),
            actions.column("num_records").to_pylist(),
            strict=True,
        )
    )


def bronze_increment(
    uri: str, since_version: int | None, storage_options: dict[str, str] | None = None
) -> Increment:
    """The files added to the table at `uri` after `since_version`, as of its latest version."""
    table = DeltaTable(uri, storage_options=storage_options)
    current = _paths(table)
    seen: dict[str, int] = {}
    if since_version is not None:
        try:
            seen = _paths(DeltaTable(uri, version=since_version, storage_options=storage_options))
        except DeltaError:
            seen = {}  # that version's log is gone: reread everything, the MERGE deduplicates
    dataset = table.to_pyarrow_dataset()
    fragments = tuple(
        fragment
        for fragment in dataset.get_fragments()
        if fragment.path in current and fragment.path not in seen
    )
    return Increment(
        from_version=since_version,
        to_version=table.version(),
        dataset=dataset,
        fragments=fragments,
        file_rows=tuple(int(current[fragment.path] or 0) for fragment in fragments),
    )
