"""The bronze increment: only rows added since the watermark, compaction or not."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from shared.pipeline.increment import (
    CHANGE_FEED,
    ChangeFeedIncrement,
    FileIncrement,
    bronze_increment,
)

pytestmark = pytest.mark.unit


def append(uri: Path, values: list[int], change_feed: bool = True) -> int:
    configuration = {CHANGE_FEED: "true"} if change_feed else None
    table = pa.table({"n": pa.array(values, pa.int64()), "day": ["d"] * len(values)})
    write_deltalake(uri, table, mode="append", partition_by=["day"], configuration=configuration)
    return DeltaTable(uri).version()


def rows(uri: Path, since: int | None, max_rows: int = 1000) -> list[int]:
    increment = bronze_increment(str(uri), since)
    return sorted(n for chunk in increment.chunks(max_rows) for n in chunk.column("n").to_pylist())


def test_the_change_feed_gives_only_rows_after_the_watermark(tmp_path: Path) -> None:
    uri = tmp_path / "bronze"
    append(uri, [1, 2])
    watermark = append(uri, [3])
    append(uri, [4, 5])
    increment = bronze_increment(str(uri), watermark)
    assert isinstance(increment, ChangeFeedIncrement)
    assert rows(uri, watermark) == [4, 5]
    assert rows(uri, None) == [1, 2, 3, 4, 5]


def test_compaction_adds_nothing_to_the_change_feed(tmp_path: Path) -> None:
    uri = tmp_path / "bronze"
    append(uri, [1])
    watermark = append(uri, [2])
    append(uri, [3])
    DeltaTable(uri).optimize.compact()
    compacted = DeltaTable(uri).version()
    assert rows(uri, watermark) == [3], "the compacted files' old rows are not reread"
    assert rows(uri, compacted) == []
    append(uri, [4])
    assert rows(uri, compacted) == [4]


def test_chunks_respect_the_size_and_drop_the_feed_columns(tmp_path: Path) -> None:
    uri = tmp_path / "bronze"
    watermark = append(uri, [0])
    for start in range(1, 40, 3):
        append(uri, [start, start + 1, start + 2])
    chunks = list(bronze_increment(str(uri), watermark).chunks(5))
    assert all(chunk.column_names == ["n", "day"] for chunk in chunks)
    assert sum(chunk.num_rows for chunk in chunks) == 39
    assert all(chunk.num_rows < 5 + 3 for chunk in chunks)


def test_without_the_feed_new_files_are_the_increment(tmp_path: Path) -> None:
    uri = tmp_path / "bronze"
    append(uri, [1], change_feed=False)
    watermark = append(uri, [2], change_feed=False)
    append(uri, [3], change_feed=False)
    assert isinstance(bronze_increment(str(uri), watermark), FileIncrement)
    assert rows(uri, watermark) == [3]
    DeltaTable(uri).optimize.compact()
    assert rows(uri, watermark) == [1, 2, 3], "compaction rereads; silver's MERGE deduplicates"
