"""The bronze writer: one commit per call, exactly once per app id, safe against stale writers."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from shared.lakehouse.access import StaticAccess
from shared.lakehouse.bronze import BronzeWriter, LakeWriteFailed, Landed, RowsAfter

pytestmark = pytest.mark.unit

SCHEMA = pa.schema(
    [
        pa.field("sequence_number", pa.int64(), nullable=False),
        pa.field("value", pa.string()),
        pa.field("event_date", pa.date32(), nullable=False),
    ]
)
DAY = dt.date(2024, 5, 1)


def rows(numbers: list[int]) -> pa.Table:
    return pa.table(
        {
            "sequence_number": pa.array(numbers, pa.int64()),
            "value": [f"v{n}" for n in numbers],
            "event_date": pa.array([DAY] * len(numbers), pa.date32()),
        },
        schema=SCHEMA,
    )


def rows_after(numbers: list[int]):  # type: ignore[no-untyped-def]
    def build(landed: int | None) -> pa.Table | None:
        kept = [n for n in numbers if landed is None or n > landed]
        return rows(kept) if kept else None

    return build


def landed_numbers(writer: BronzeWriter, table: str = "t") -> list[int]:
    data = DeltaTable(writer.uri(table)).to_pyarrow_table()
    return sorted(data.column("sequence_number").to_pylist())


def land_in_one_group(
    writer: BronzeWriter, calls: list[tuple[str, int, list[int] | RowsAfter]]
) -> dict[int, Landed | BaseException]:
    """Land `calls` while another commit runs, so that they all fall into the next one; the
    outcome of each call (its Landed, or what it raised) by index."""
    holder = f"holder-{time.monotonic_ns()}"
    writer.land("t", SCHEMA, holder, 0, rows_after([0]))
    release = threading.Event()
    outcomes: dict[int, Landed | BaseException] = {}

    def slow(landed: int | None) -> pa.Table:
        release.wait(10)
        return rows([1])

    def land(index: int, app_id: str, version: int, build: list[int] | RowsAfter) -> None:
        after = rows_after(build) if isinstance(build, list) else build
        try:
            outcomes[index] = writer.land("t", SCHEMA, app_id, version, after)
        except Exception as error:
            outcomes[index] = error

    first = threading.Thread(target=writer.land, args=("t", SCHEMA, holder, 1, slow))
    first.start()
    waiting = [threading.Thread(target=land, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in waiting:
        thread.start()
    queue = writer._tables["t"].queue
    deadline = time.monotonic() + 10
    while len(queue) < len(calls) and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in (first, *waiting):
        thread.join(10)
    return outcomes


def test_first_land_creates_the_partitioned_table(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    result = writer.land("t", SCHEMA, "hub/cg/0", 2, rows_after([0, 1, 2]))
    assert (result.rows, result.version) == (3, 2)
    table = DeltaTable(writer.uri("t"))
    assert table.metadata().partition_columns == ["event_date"]
    assert table.transaction_version("hub/cg/0") == 2
    assert (tmp_path / "bronze" / "t" / "event_date=2024-05-01").is_dir()


def test_a_redelivered_batch_adds_nothing(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    writer.land("t", SCHEMA, "p0", 2, rows_after([0, 1, 2]))
    version = DeltaTable(writer.uri("t")).version()
    again = writer.land("t", SCHEMA, "p0", 2, rows_after([0, 1, 2]))
    assert again.rows == 0
    assert DeltaTable(writer.uri("t")).version() == version  # not even an empty commit
    assert landed_numbers(writer) == [0, 1, 2]


def test_an_overlapping_batch_adds_only_the_new_rows(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    writer.land("t", SCHEMA, "p0", 2, rows_after([0, 1, 2]))
    assert writer.land("t", SCHEMA, "p0", 5, rows_after([1, 2, 3, 4, 5])).rows == 3
    assert landed_numbers(writer) == [0, 1, 2, 3, 4, 5]


def test_app_ids_are_independent(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    writer.land("t", SCHEMA, "p0", 2, rows_after([0, 1, 2]))
    assert writer.land("t", SCHEMA, "p1", 2, rows_after([0, 1, 2])).rows == 3
    assert writer.landed_version("t", "p1") == 2
    assert writer.landed_version("t", "p9") is None
    assert writer.landed_version("missing", "p0") is None


def test_a_restarted_writer_reads_what_was_landed(tmp_path: Path) -> None:
    BronzeWriter(str(tmp_path), direct_log=True).land("t", SCHEMA, "p0", 2, rows_after([0, 1, 2]))
    restarted = BronzeWriter(str(tmp_path), direct_log=True)
    assert restarted.land("t", SCHEMA, "p0", 3, rows_after([0, 1, 2, 3])).rows == 1
    assert landed_numbers(restarted) == [0, 1, 2, 3]


def test_a_stale_writer_of_the_same_partition_lands_no_duplicates(tmp_path: Path) -> None:
    """Two instances own the same partition in turn: the stale one's commit conflicts on the
    app id, it refreshes, and lands only what the other did not."""
    stale = BronzeWriter(str(tmp_path), retry_delay_s=0.0, direct_log=True)
    fresh = BronzeWriter(str(tmp_path), retry_delay_s=0.0, direct_log=True)
    stale.land("t", SCHEMA, "other", 0, rows_after([0]))
    assert stale.landed_version("t", "p0") is None  # cached: nothing landed for p0 yet
    fresh.land("t", SCHEMA, "p0", 4, rows_after([0, 1, 2, 3, 4]))
    assert stale.land("t", SCHEMA, "p0", 6, rows_after([3, 4, 5, 6])).rows == 2
    assert landed_numbers(stale) == [0, 0, 1, 2, 3, 4, 5, 6]


def test_concurrent_partitions_commit_safely(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    errors: list[BaseException] = []

    def partition(p: int) -> None:
        try:
            for batch in range(5):
                numbers = list(range(batch * 10, batch * 10 + 10))
                writer.land("t", SCHEMA, f"p{p}", numbers[-1], rows_after(numbers))
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=partition, args=(p,)) for p in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(landed_numbers(writer)) == 4 * 50
    table = DeltaTable(writer.uri("t"))
    assert [table.transaction_version(f"p{p}") for p in range(4)] == [49] * 4


def test_new_columns_evolve_the_schema(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    writer.land("t", SCHEMA, "p0", 0, rows_after([0]))
    wider = rows([1]).append_column("added", pa.array(["x"]))
    assert writer.land("t", wider.schema, "p0", 1, lambda landed: wider).rows == 1
    assert "added" in DeltaTable(writer.uri("t")).schema().to_arrow().names


class RotatingAccess:
    """Credentials that change between calls, as tokens are renewed."""

    def __init__(self) -> None:
        self.generation = 0

    def current(self) -> tuple[dict[str, str] | None, int]:
        return None, self.generation


def test_new_credentials_reopen_the_handle(tmp_path: Path) -> None:
    access = RotatingAccess()
    writer = BronzeWriter(str(tmp_path), access, direct_log=True)
    writer.land("t", SCHEMA, "p0", 1, rows_after([0, 1]))
    access.generation = 1
    assert writer.land("t", SCHEMA, "p0", 1, rows_after([0, 1])).rows == 0
    assert writer.land("t", SCHEMA, "p0", 2, rows_after([2])).rows == 1


def test_an_unreachable_lake_fails_after_bounded_retries(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer = BronzeWriter(
        str(blocker), StaticAccess(), max_attempts=2, retry_delay_s=0.0, direct_log=True
    )
    with pytest.raises(LakeWriteFailed, match="failed 2 times"):
        writer.land("t", SCHEMA, "p0", 0, rows_after([0]))


def test_calls_waiting_for_a_commit_share_the_next_one(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    land_in_one_group(writer, [("p1", 5, [5]), ("p2", 5, [5])])
    table = DeltaTable(writer.uri("t"))
    assert landed_numbers(writer) == [0, 1, 5, 5]
    assert table.version() == 3  # create + first + one commit for both waiting calls
    assert table.transaction_version("p1") == table.transaction_version("p2") == 5


@pytest.mark.parametrize("direct_log", [True, False])
def test_one_app_id_twice_in_a_group_commit_lands_once(tmp_path: Path, direct_log: bool) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=direct_log)
    # A redelivery of the same batch, and an overlapping one, wait for the same commit.
    land_in_one_group(writer, [("p1", 12, [10, 11, 12]), ("p1", 12, [10, 11, 12])])
    land_in_one_group(writer, [("p1", 14, [12, 13, 14]), ("p1", 15, [13, 14, 15])])
    table = DeltaTable(writer.uri("t"))
    assert [n for n in landed_numbers(writer) if n >= 10] == [10, 11, 12, 13, 14, 15]
    assert table.transaction_version("p1") == 15
    log_dir = tmp_path / "bronze" / "t" / "_delta_log"
    for commit in log_dir.glob("*.json"):
        app_ids = [line for line in commit.read_text().splitlines() if '"appId":"p1"' in line]
        assert len(app_ids) <= 1, commit.name


def test_a_failure_while_building_rows_reaches_the_caller(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)

    def broken(landed: int | None) -> pa.Table:
        raise ValueError("bad rows")

    with pytest.raises(ValueError, match="bad rows"):
        writer.land("t", SCHEMA, "p0", 0, broken)
    assert writer.land("t", SCHEMA, "p0", 0, rows_after([0])).rows == 1


@pytest.mark.parametrize("direct_log", [True, False])
def test_bad_rows_of_one_call_fail_only_that_call_of_a_group_commit(
    tmp_path: Path, direct_log: bool
) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=direct_log)

    def broken(landed: int | None) -> pa.Table:
        raise ValueError("bad rows")

    outcomes = land_in_one_group(writer, [("p1", 5, [5]), ("p2", 5, broken), ("p3", 6, [6])])
    assert isinstance(outcomes[1], ValueError)
    assert [type(outcomes[i]) for i in (0, 2)] == [Landed, Landed]
    assert landed_numbers(writer) == [0, 1, 5, 6]
    table = DeltaTable(writer.uri("t"))
    assert (table.transaction_version("p1"), table.transaction_version("p3")) == (5, 6)
    assert table.transaction_version("p2") is None


def test_compaction_keeps_rows_and_exactly_once(tmp_path: Path) -> None:
    writer = BronzeWriter(str(tmp_path), direct_log=True)
    for batch in range(6):
        numbers = [batch * 2, batch * 2 + 1]
        writer.land("t", SCHEMA, "p0", numbers[-1], rows_after(numbers))
    assert len(DeltaTable(writer.uri("t")).file_uris()) == 6
    metrics = writer.compact("t")
    assert metrics is not None and metrics["numFilesRemoved"] == 6
    assert len(DeltaTable(writer.uri("t")).file_uris()) == 1
    assert landed_numbers(writer) == list(range(12))
    assert writer.land("t", SCHEMA, "p0", 11, rows_after(list(range(12)))).rows == 0
    assert writer.land("t", SCHEMA, "p0", 12, rows_after([11, 12])).rows == 1
    assert writer.compact("missing") is None


def test_two_compactions_at_once_keep_every_row_once(tmp_path: Path) -> None:
    first, second = (
        BronzeWriter(str(tmp_path), direct_log=True),
        BronzeWriter(str(tmp_path), direct_log=True),
    )
    for batch in range(20):
        numbers = [batch * 2, batch * 2 + 1]
        first.land("t", SCHEMA, "p0", numbers[-1], rows_after(numbers))
    start = threading.Barrier(2)
    results: list[object] = []

    def compact(writer: BronzeWriter) -> None:
        start.wait(10)
        results.append(writer.compact("t"))

    threads = [threading.Thread(target=compact, args=(w,)) for w in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2
    assert landed_numbers(first) == list(range(40))
    assert len(DeltaTable(first.uri("t")).file_uris()) == 1


def test_the_direct_log_appender_is_chosen_by_the_caller_and_needs_a_local_lake(
    tmp_path: Path,
) -> None:
    with pytest.raises(ValueError, match="local lake"):
        BronzeWriter("abfss://lake@acct.dfs.core.windows.net/x", direct_log=True)
    BronzeWriter(f"file://{tmp_path}", direct_log=True)  # a file:// URI is local
    through_deltalake = BronzeWriter(str(tmp_path))  # the default: no sniffing of the URI
    through_deltalake.land("t", SCHEMA, "p0", 0, rows_after([0]))
    assert through_deltalake._tables["t"].direct is None
