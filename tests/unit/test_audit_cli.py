"""`python -m devhost audit verify`: one line per hour, the first bad record named, exit codes."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devhost.audit_cli import run
from devhost.cli import build_parser
from embedded.audit.chain import record_hash, seal
from embedded.audit.checkpoints import checkpoints_path
from embedded.documents.model import Condition, Query
from embedded.documents.store import Container, DocumentStore, database_path
from shared.audit.checkpoints import FileCheckpoints
from shared.audit.trail import AUDIT_CONTAINER, DocumentAuditTrail
from tests.auditdata import HOUR, StepClock, event
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit

OPEN_HOUR = "2026-12-07T13"
CLOSED_HOUR = "2026-12-07T12"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Five records in a closed, checkpointed hour and five in the open one."""
    store = DocumentStore(database_path(tmp_path, "platform"))
    trail = DocumentAuditTrail(
        store.container(AUDIT_CONTAINER),
        clock=StepClock(start=HOUR + 3240, step=60.0),
        checkpoints=FileCheckpoints(checkpoints_path(tmp_path)),
    )
    for n in range(10):
        trail.append(event(reason=f"call {n}"))
    store.close()
    return tmp_path


def verify(data_dir: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    arguments = build_parser().parse_args(["audit", "verify", "--data-dir", str(data_dir), *extra])
    return run(arguments, out), out.getvalue()


def tamper(data_dir: Path) -> tuple[DocumentStore, Container]:
    store = DocumentStore(database_path(data_dir, "platform"))
    audit = store.existing("audit")
    assert audit is not None
    return store, audit


def record(audit: Container, partition: str, seq: int) -> dict[str, Any]:
    where = [Condition("/seq", "=", seq), Condition("/type", "=", "record")]
    [found] = audit.query(Query(where=where, partition_key=partition)).documents
    return found


def test_every_chain_holds(data_dir: Path) -> None:
    code, text = verify(data_dir)
    lines = text.splitlines()
    assert code == 0
    assert lines[0].startswith(CLOSED_HOUR) and lines[0].endswith("checkpointed  ok")
    assert lines[1].startswith(OPEN_HOUR) and lines[1].endswith("open          ok")
    assert "5 records" in lines[0] and "5 records" in lines[1]
    assert lines[-1] == "audit verify: 2 chains hold"


def test_no_audit_records_is_not_a_failure(tmp_path: Path) -> None:
    assert verify(tmp_path) == (0, "no audit records\n")
    DocumentStore(database_path(tmp_path, "platform")).close()  # a store without the container
    assert verify(tmp_path) == (0, "no audit records\n")


def broken_line(text: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith("audit verify:")]
    return line


def test_an_edited_record_is_named(data_dir: Path) -> None:
    store, audit = tamper(data_dir)
    edited = record(audit, OPEN_HOUR, 3)
    edited["reason"] = "nothing happened"
    audit.upsert(edited)
    store.close()
    code, text = verify(data_dir)
    assert code == 1
    assert f"EDITED: record {edited['id']} (partition {OPEN_HOUR}, seq 3)" in text
    assert broken_line(text) == (
        f"audit verify: 1 of 2 chains broken; the first bad record is {edited['id']} "
        f"in {OPEN_HOUR} seq 3: edited"
    )


def test_a_deleted_record_is_named(data_dir: Path) -> None:
    store, audit = tamper(data_dir)
    gone, after = record(audit, CLOSED_HOUR, 2), record(audit, CLOSED_HOUR, 3)
    audit.delete(gone["id"], CLOSED_HOUR)
    store.close()
    code, text = verify(data_dir)
    assert code == 1
    assert f"REMOVED: record {after['id']} (partition {CLOSED_HOUR}, seq 2)" in text


def test_a_truncated_closed_hour_is_named_against_its_checkpoint(data_dir: Path) -> None:
    store, audit = tamper(data_dir)
    audit.delete(record(audit, CLOSED_HOUR, 5)["id"], CLOSED_HOUR)
    head = audit.read("head", CLOSED_HOUR)  # the head rewritten to match, as a careful forger would
    head.update(last_seq=4, last_hash=record(audit, CLOSED_HOUR, 4)["hash"])
    audit.upsert(head)
    store.close()
    code, text = verify(data_dir)
    assert code == 1
    assert f"REMOVED: record - (partition {CLOSED_HOUR}, seq 5)" in text
    assert "the checkpoint says the chain ends at seq 5" in text


def test_an_inserted_record_is_named(data_dir: Path) -> None:
    store, audit = tamper(data_dir)
    original = record(audit, OPEN_HOUR, 2)
    forged = seal({**original, "id": "forged-record", "reason": "all fine"})
    audit.create({k: v for k, v in forged.items() if not k.startswith("_")})
    store.close()
    code, text = verify(data_dir)
    assert code == 1
    assert f"INSERTED: record forged-record (partition {OPEN_HOUR}, seq 2)" in text


def test_swapped_records_are_named(data_dir: Path) -> None:
    store, audit = tamper(data_dir)
    second, fourth = record(audit, CLOSED_HOUR, 2), record(audit, CLOSED_HOUR, 4)
    for name in ("seq", "time"):
        second[name], fourth[name] = fourth[name], second[name]
    for moved in (second, fourth):
        moved["hash"] = record_hash(moved)
        audit.upsert(moved)
    store.close()
    code, text = verify(data_dir)
    assert code == 1
    assert f"REORDERED: record {fourth['id']} (partition {CLOSED_HOUR}, seq 2)" in text


def test_checkpoints_without_records_are_removed_hours(data_dir: Path) -> None:
    database_path(data_dir, "platform").unlink()
    code, text = verify(data_dir)
    assert code == 1
    assert f"REMOVED: record - (partition {CLOSED_HOUR}, seq 1)" in text


def test_an_unreadable_checkpoint_line_is_named_and_left_out(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with checkpoints_path(data_dir).open("ab") as file:
        file.write(b"not a checkpoint\n")
    code, _ = verify(data_dir)
    assert code == 0
    assert "line 2, left out: not JSON" in capsys.readouterr().err


def test_the_module_exits_non_zero_on_a_broken_chain(data_dir: Path) -> None:
    command = [sys.executable, "-m", "devhost", "audit", "verify", "--data-dir", str(data_dir)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    store, audit = tamper(data_dir)
    audit.delete(record(audit, OPEN_HOUR, 1)["id"], OPEN_HOUR)
    store.close()
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"in {OPEN_HOUR} seq 1: removed" in done.stdout
