"""`python -m devhost audit verify`: check every hour's hash chain of the local audit trail.

Reads the container `audit` of `<data dir>/documents/<database>.sqlite3` and the checkpoints
file `<data dir>/audit/checkpoints.jsonl`, prints one line per partition (hour) checked and,
where a chain breaks, the first bad record: its id, partition, seq and what happened to it
(edited, removed, inserted, reordered). Exits 1 when any chain breaks, 0 when every chain holds
(or there are no audit records at all). A line of the checkpoints file that is not a
checkpoint (torn by a crash) is named on stderr and left out. It may run while the devhost
writes the trail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from embedded.audit.chain import verify_partition
from embedded.audit.checkpoints import Checkpoint, checkpoints_path, load_checkpoints
from embedded.audit.verify import PartitionResult, verify_trail
from embedded.documents.model import DocumentStoreError
from embedded.documents.store import DocumentStore, database_path

DATABASE = "platform"
CONTAINER = "audit"


def add_parser(commands: Any) -> None:
    """Register the `audit` command on the devhost's subparsers."""
    parser = commands.add_parser("audit", help="check the local audit trail")
    actions = parser.add_subparsers(dest="action", required=True)
    verify = actions.add_parser(
        "verify", help="walk every hour's hash chain and name the first bad record"
    )
    verify.add_argument("--data-dir", type=Path, default=Path(".data"), help="the data dir")
    verify.add_argument("--database", default=DATABASE, help="the database (file) name")


def run(arguments: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Carry out the `audit` command; 0 when every chain holds, 1 otherwise."""
    where = checkpoints_path(arguments.data_dir)
    try:
        loaded = load_checkpoints(where)
    except OSError as error:
        print(f"devhost audit: cannot read the checkpoints: {error}", file=sys.stderr)
        return 1
    for number, problem in loaded.unreadable:
        print(f"devhost audit: {where}, line {number}, left out: {problem}", file=sys.stderr)
    checkpoints = loaded.checkpoints
    path = database_path(arguments.data_dir, arguments.database)
    store = DocumentStore(path) if path.exists() else None
    try:
        container = store.existing(CONTAINER) if store is not None else None
        if container is None and not checkpoints:
            out.write("no audit records\n")
            return 0
        if container is None:  # checkpoints, yet no records: every checkpointed hour is gone
            results = [_gone(checkpoint) for _, checkpoint in sorted(checkpoints.items())]
        else:
            results = verify_trail(container, checkpoints)
    except DocumentStoreError as error:
        print(f"devhost audit: {error}", file=sys.stderr)
        return 1
    finally:
        if store is not None:
            store.close()
    return _report(results, out)


def _gone(checkpoint: Checkpoint) -> PartitionResult:
    problem = verify_partition([], partition=checkpoint.partition, checkpoint=checkpoint)
    return PartitionResult(checkpoint.partition, 0, 0, "no head", True, problem)


def _report(results: list[PartitionResult], out: TextIO) -> int:
    broken = [r for r in results if r.problem is not None]
    for result in results:
        closed = "checkpointed" if result.checkpointed else result.state
        line = f"{result.partition}  {result.records:>7} records  {closed:<12}"
        problem = result.problem
        if problem is None:
            out.write(f"{line}  ok\n")
        else:
            seq = "-" if problem.seq is None else problem.seq
            out.write(
                f"{line}  {problem.kind.upper()}: record {problem.id or '-'} "
                f"(partition {problem.partition}, seq {seq}): {problem.detail}\n"
            )
    if not results:
        out.write("no audit records\n")
    elif broken:
        first = broken[0].problem
        assert first is not None
        out.write(
            f"audit verify: {len(broken)} of {len(results)} chains broken; the first bad record "
            f"is {first.id or '-'} in {first.partition} seq {first.seq}: {first.kind}\n"
        )
        return 1
    else:
        out.write(f"audit verify: {len(results)} chains hold\n")
    return 0
