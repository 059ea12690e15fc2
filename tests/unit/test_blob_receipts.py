"""Blob receipts: once per blob version, retries then poison, all surviving a restart."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.blob.receipts import STOPPED_MID_ATTEMPT, BlobReceipts, ReceiptStatus

pytestmark = pytest.mark.unit

KEY = ("ingest", "landing/a.csv", '"0x1-10"')


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "devhost" / "blob_receipts.sqlite3"


@pytest.fixture
def receipts(db_path: Path) -> Iterator[BlobReceipts]:
    store = BlobReceipts(db_path)
    yield store
    store.close()


def reopen(store: BlobReceipts, max_attempts: int = 5) -> BlobReceipts:
    store.close()
    return BlobReceipts(store.path, max_attempts=max_attempts)


def test_the_database_is_sqlite_in_wal_mode(receipts: BlobReceipts, db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_blob_version_triggers_once(receipts: BlobReceipts) -> None:
    first = receipts.begin(*KEY)
    assert (first.status, first.attempts) == (ReceiptStatus.PENDING, 1)
    receipts.complete(*KEY)
    again = receipts.begin(*KEY)
    assert again.status is ReceiptStatus.DONE
    assert again.attempts == 1
    assert KEY in receipts.settled()


def test_a_new_version_triggers_again(receipts: BlobReceipts) -> None:
    receipts.begin(*KEY)
    receipts.complete(*KEY)
    rewritten = (KEY[0], KEY[1], '"0x2-10"')
    receipt = receipts.begin(*rewritten)
    assert (receipt.status, receipt.attempts) == (ReceiptStatus.PENDING, 1)
    assert rewritten not in receipts.settled()


def test_receipts_are_per_function(receipts: BlobReceipts) -> None:
    receipts.begin(*KEY)
    receipts.complete(*KEY)
    other = receipts.begin("archive", KEY[1], KEY[2])
    assert other.status is ReceiptStatus.PENDING


def test_a_failing_blob_is_poisoned_after_five_attempts(receipts: BlobReceipts) -> None:
    for attempt in range(1, 5):
        assert receipts.begin(*KEY).attempts == attempt
        failed = receipts.fail(*KEY, f"ValueError: boom {attempt}")
        assert failed.status is ReceiptStatus.PENDING
        assert failed.last_error == f"ValueError: boom {attempt}"
    assert receipts.begin(*KEY).attempts == 5
    poisoned = receipts.fail(*KEY, "ValueError: boom 5")
    assert poisoned.status is ReceiptStatus.POISON and poisoned.just_poisoned
    [record] = receipts.poisoned()
    assert (record.function, record.blob, record.etag) == KEY
    assert record.attempts == 5
    assert record.error == "ValueError: boom 5"
    later = receipts.begin(*KEY)
    assert later.status is ReceiptStatus.POISON and not later.just_poisoned
    assert KEY in receipts.settled()


def test_the_attempt_limit_is_configurable(db_path: Path) -> None:
    receipts = BlobReceipts(db_path, max_attempts=2)
    try:
        receipts.begin(*KEY)
        assert receipts.fail(*KEY, "first").status is ReceiptStatus.PENDING
        receipts.begin(*KEY)
        assert receipts.fail(*KEY, "second").status is ReceiptStatus.POISON
    finally:
        receipts.close()


def test_an_attempt_limit_below_one_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BlobReceipts(db_path, max_attempts=0)


def test_a_restart_keeps_done_poison_and_attempt_counts(receipts: BlobReceipts) -> None:
    receipts.begin(*KEY)
    receipts.complete(*KEY)
    failing = ("ingest", "landing/b.csv", '"0x1-1"')
    receipts.begin(*failing)
    receipts.fail(*failing, "RuntimeError: first")
    receipts.begin(*failing)  # the host dies during this attempt
    restarted = reopen(receipts)
    try:
        assert restarted.get(*KEY) is not None
        assert restarted.begin(*KEY).status is ReceiptStatus.DONE
        retry = restarted.begin(*failing)
        assert (retry.status, retry.attempts) == (ReceiptStatus.PENDING, 3)
        assert retry.last_error == "RuntimeError: first"
    finally:
        restarted.close()


def test_dying_during_the_last_attempt_poisons_on_restart(receipts: BlobReceipts) -> None:
    for _ in range(4):
        receipts.begin(*KEY)
        receipts.fail(*KEY, "TimeoutError: slow")
    receipts.begin(*KEY)  # the fifth attempt never reports back
    restarted = reopen(receipts)
    try:
        receipt = restarted.begin(*KEY)
        assert receipt.status is ReceiptStatus.POISON and receipt.just_poisoned
        [record] = restarted.poisoned()
        assert record.attempts == 5
        assert STOPPED_MID_ATTEMPT in record.error and "TimeoutError: slow" in record.error
    finally:
        restarted.close()


def test_an_attempt_never_made_is_uncounted(receipts: BlobReceipts) -> None:
    receipts.begin(*KEY)
    receipts.undo_begin(*KEY)
    assert receipts.get(*KEY) is None
    receipts.begin(*KEY)
    receipts.fail(*KEY, "first")
    receipts.begin(*KEY)
    receipts.undo_begin(*KEY)
    receipt = receipts.get(*KEY)
    assert receipt is not None and receipt.attempts == 1 and receipt.last_error == "first"


def test_undecodable_blobs_are_poisoned_at_once(receipts: BlobReceipts) -> None:
    receipts.begin(*KEY)
    receipt = receipts.poison_now(*KEY, "not UTF-8")
    assert receipt.status is ReceiptStatus.POISON and receipt.just_poisoned
    assert [r.error for r in receipts.poisoned()] == ["not UTF-8"]


def test_failing_without_a_begun_attempt_is_a_programming_error(
    receipts: BlobReceipts,
) -> None:
    with pytest.raises(KeyError, match="call begin first"):
        receipts.fail(*KEY, "boom")


def test_a_name_that_is_not_utf8_is_kept_apart_and_survives_a_restart(
    receipts: BlobReceipts,
) -> None:
    latin1 = ("ingest", "landing/caf\udce9.csv", '"0x1-1"')  # b"caf\xe9" as os.scandir gives it
    lookalike = ("ingest", "landing/caf\\xe9.csv", '"0x1-1"')  # a real name, escape-shaped
    receipts.begin(*lookalike)
    receipts.complete(*lookalike)
    poisoned = receipts.poison_now(*latin1, "the blob name is not valid UTF-8")
    assert poisoned.status is ReceiptStatus.POISON and poisoned.blob == latin1[1]
    restarted = reopen(receipts)
    try:
        assert restarted.settled() == {latin1, lookalike}
        assert restarted.begin(*latin1).status is ReceiptStatus.POISON
        assert [record.blob for record in restarted.poisoned()] == [latin1[1]]
    finally:
        restarted.close()
