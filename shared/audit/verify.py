"""Verifying the whole audit trail (the daily timer's work): every hour's chain walked, and
each closed hour compared with its checkpoint. The walk itself is `embedded.audit.verify`,
which `python -m devhost audit verify` runs as well."""

from __future__ import annotations

from embedded.audit.chain import Problem
from embedded.audit.verify import PartitionResult, verify_trail
from shared.audit.checkpoints import CheckpointStore
from shared.documents.port import DocumentContainer


def verify_partitions(
    container: DocumentContainer, checkpoints: CheckpointStore
) -> list[PartitionResult]:
    """Each partition checked, oldest hour first, with its first problem if any."""
    return verify_trail(container, checkpoints.written())


def verify_all(container: DocumentContainer, checkpoints: CheckpointStore) -> list[Problem]:
    """The first problem of every partition whose chain does not hold ([]: all hold)."""
    return [r.problem for r in verify_partitions(container, checkpoints) if r.problem]
