"""Where the pipeline's Delta tables live: `<root>/{bronze,silver,gold}/<table>`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from shared.lakehouse.access import LakeAccess
from shared.lakehouse.tables import open_table

QUALITY_TABLE = "_quality"
QUARANTINE_TABLE = "quarantine"


def table_name(event_type: str) -> str:
    """The table of an event type: `payment.transaction` -> `payment_transaction`."""
    return event_type.replace(".", "_").replace("-", "_")


@dataclass(frozen=True)
class Lake:
    """The lakehouse root (a local path or `abfss://` URI) and the options deltalake needs:
    fixed ones, or ingestion's `LakeAccess`, whose Entra ID token options are refreshed."""

    root: str
    storage_options: Mapping[str, str] = field(default_factory=dict)
    access: LakeAccess | None = None

    def uri(self, layer: str, table: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{table}"

    def options(self) -> dict[str, str] | None:
        if self.access is not None:
            return self.access.current()[0]
        return dict(self.storage_options) or None

    def open(self, layer: str, table: str, version: int | None = None) -> DeltaTable | None:
        """The Delta table, or None when it does not exist yet."""
        try:
            return open_table(
                self.uri(layer, table), version=version, storage_options=self.options()
            )
        except TableNotFoundError:
            return None
