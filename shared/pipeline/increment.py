"""The bronze rows a run has not seen since the watermark's Delta version.

Where the bronze table has the change data feed on (`delta.enableChangeDataFeed`), the increment
is the feed's inserts after the watermark: compaction commits carry `dataChange=false` and add
nothing to the feed, so compacting bronze never makes silver reread rows. Otherwise (or when the
feed's files are gone, vacuumed) it is the data files of the current version that were not in the
watermark's version; compaction then makes the increment grow to rows seen before, which
silver's MERGE makes harmless.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from shared.lakehouse.tables import open_table

CHANGE_FEED = "delta.enableChangeDataFeed"
CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


class Increment(Protocol):
    """New bronze data between two versions (`from_version` exclusive, None: from the start)."""

    @property
    def to_version(self) -> int: ...

    def chunks(self, max_rows: int) -> Iterator[pa.Table]: ...


@dataclass(frozen=True)
class FileIncrement:
    """The data files added since the watermark's version (bronze is append-only)."""

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


@dataclass(frozen=True)
class ChangeFeedIncrement:
    """The change data feed's inserts in versions `from_version + 1` to `to_version`."""

    table: DeltaTable
    from_version: int
    to_version: int

    def chunks(self, max_rows: int) -> Iterator[pa.Table]:
        """The new rows in tables of about `max_rows`, without the feed's own columns."""
        if self.from_version >= self.to_version:
            return
        reader = pa.RecordBatchReader.from_stream(
            self.table.load_cdf(
                starting_version=self.from_version + 1, ending_version=self.to_version
            )
        )
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            inserted = _without_views(pa.Table.from_batches([batch]))
            inserted = inserted.filter(pc.equal(inserted.column("_change_type"), "insert"))
            inserted = inserted.drop_columns(list(CHANGE_COLUMNS))
            pending.extend(inserted.to_batches())
            rows += inserted.num_rows
            if rows >= max_rows:
                yield pa.Table.from_batches(pending)
                pending, rows = [], 0
        if rows:
            yield pa.Table.from_batches(pending)


def _without_views(table: pa.Table) -> pa.Table:
    """The feed reads strings as Arrow views; silver expects the data files' plain types."""
    fields = []
    for field in table.schema:
        if pa.types.is_string_view(field.type):
            field = field.with_type(pa.string())
        elif pa.types.is_binary_view(field.type):
            field = field.with_type(pa.binary())
        fields.append(field)
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _change_feed(table: DeltaTable, since_version: int) -> ChangeFeedIncrement | None:
    """The feed increment, if the feed is on and its files since the watermark are readable."""
    if table.metadata().configuration.get(CHANGE_FEED, "").lower() != "true":
        return None
    increment = ChangeFeedIncrement(table, since_version, table.version())
    if since_version >= increment.to_version:
        return increment
    try:
        # Opening the feed checks the log; a feed enabled after the watermark raises here.
        table.load_cdf(starting_version=since_version + 1, ending_version=increment.to_version)
    except (DeltaError, OSError):
        return None
    return increment


def bronze_increment(
    uri: str, since_version: int | None, storage_options: dict[str, str] | None = None
) -> Increment:
    """The rows added to the table at `uri` after `since_version`, as of its latest version."""
    table = open_table(uri, storage_options=storage_options)
    if since_version is not None:
        feed = _change_feed(table, since_version)
        if feed is not None:
            return feed
    current = _paths(table)
    seen: dict[str, int] = {}
    if since_version is not None:
        try:
            seen = _paths(open_table(uri, version=since_version, storage_options=storage_options))
        except DeltaError:
            seen = {}  # that version's log is gone: reread everything, the MERGE deduplicates
    dataset = table.to_pyarrow_dataset()
    fragments = tuple(
        fragment
        for fragment in dataset.get_fragments()
        if fragment.path in current and fragment.path not in seen
    )
    return FileIncrement(
        from_version=since_version,
        to_version=table.version(),
        dataset=dataset,
        fragments=fragments,
        file_rows=tuple(int(current[fragment.path] or 0) for fragment in fragments),
    )
