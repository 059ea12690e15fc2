"""Nightly table maintenance: compaction, Z-order on key columns, and vacuum.

Silver, gold, quarantine and the quality record are maintained. Bronze is not: the pipeline
finds new bronze rows by the files added since its watermark, and compacted files would look new
(harmless, as the MERGE deduplicates, but a full re-read of bronze every night).

Each table is maintained under its maintenance lease (`shared.lakehouse.lease`): two jobs on one
table (two runs of the orchestration, two instances) would otherwise both commit a rewrite of
the same files and duplicate their rows. A job that finds the lease held skips the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from msgspec import UNSET, UnsetType

from shared.lakehouse.access import StaticAccess
from shared.lakehouse.lease import TableBusy, TableLeases
from shared.pipeline.lake import QUALITY_TABLE, QUARANTINE_TABLE, Lake


@dataclass(frozen=True)
class MaintenanceTarget:
    layer: str
    table: str
    zorder: tuple[str, ...] = ()


@dataclass(frozen=True)
class MaintenanceResult:
    """What maintenance did to one table (`layer/table`): `maintained` with its figures,
    `missing`, or `failed` with the error. Unset figures stay off the wire."""

    table: str
    status: str  # maintained | missing | busy (another job holds the table) | failed
    operation: str | UnsetType = UNSET  # compact | z_order
    zorder: list[str] | UnsetType = UNSET
    files_added: int | UnsetType = UNSET
    files_removed: int | UnsetType = UNSET
    vacuumed_files: int | UnsetType = UNSET
    version: int | UnsetType = UNSET
    error: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET  # why it was busy


def maintenance_targets(
    silver: dict[str, tuple[str, ...]], gold: dict[str, tuple[str, ...]]
) -> list[MaintenanceTarget]:
    """Every table the pipeline owns, with the columns to Z-order it on (none: compact only)."""
    targets = [MaintenanceTarget("silver", table, keys) for table, keys in sorted(silver.items())]
    targets += [MaintenanceTarget("gold", table, keys) for table, keys in sorted(gold.items())]
    targets += [
        MaintenanceTarget("silver", QUARANTINE_TABLE),
        MaintenanceTarget("silver", QUALITY_TABLE),
    ]
    return targets


def maintain(lake: Lake, target: MaintenanceTarget, retention_hours: int) -> MaintenanceResult:
    """Compact (or Z-order, which also compacts) one table, then vacuum what is older than
    `retention_hours`; time travel further back than that is given up on purpose. Reports
    `busy` (and changes nothing) while another job maintains the table."""
    name = f"{target.layer}/{target.table}"
    if lake.open(target.layer, target.table) is None:
        return MaintenanceResult(name, "missing")
    leases = TableLeases(lake.root, lake.access or StaticAccess(dict(lake.storage_options)))
    try:
        with leases.hold(target.layer, target.table):
            return _maintain(lake, target, retention_hours)
    except TableBusy as busy:
        return MaintenanceResult(name, "busy", reason=str(busy))


def _maintain(lake: Lake, target: MaintenanceTarget, retention_hours: int) -> MaintenanceResult:
    table = lake.open(target.layer, target.table)
    name = f"{target.layer}/{target.table}"
    if table is None:
        return MaintenanceResult(name, "missing")
    names = {column.name for column in table.schema().fields}
    columns = [c for c in target.zorder if c in names]
    if columns:
        metrics = table.optimize.z_order(columns)
        operation = "z_order"
    else:
        metrics = table.optimize.compact()
        operation = "compact"
    removed = table.vacuum(
        retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
    )
    return MaintenanceResult(
        name,
        "maintained",
        operation=operation,
        zorder=columns,
        files_added=int(metrics.get("numFilesAdded", 0)),
        files_removed=int(metrics.get("numFilesRemoved", 0)),
        vacuumed_files=len(removed),
        version=table.version(),
    )


def maintain_all(
    lake: Lake, targets: Sequence[MaintenanceTarget], retention_hours: int
) -> list[MaintenanceResult]:
    return [maintain(lake, target, retention_hours) for target in targets]
