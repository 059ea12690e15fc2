"""SQL turning a chunk of bronze rows into typed, deduplicated silver rows with rule flags."""

from __future__ import annotations

import pyarrow as pa

from shared.pipeline.quality import Castable, RowRule
from shared.pipeline.specs import SilverSpec

# Computed by silver; a bronze column of the same name (bronze's own partition) is dropped.
COMPUTED = ("event_date", "processed_at")
FLAG_PREFIX = "__fail_"


def quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def rules_for(spec: SilverSpec) -> list[RowRule]:
    """A castability rule per typed column that is not text (the most precise reason), then the
    spec's row rules."""
    casts: list[RowRule] = [
        Castable(column) for column, kind in spec.typed.items() if kind != "VARCHAR"
    ]
    return [*casts, *spec.rules]


def typing_sql(spec: SilverSpec, schema: pa.Schema, relation: str) -> str:
    """A query over `relation` (the bronze chunk) giving typed columns, `__raw_<c>` originals,
    one `__fail_<i>` flag per rule of `rules_for(spec)`, and one row per (source, event_id)."""
    present = set(schema.names)
    typed = spec.typed
    select = []
    for column, kind in typed.items():
        source = quoted(column) if column in present else "NULL"
        select.append(f"TRY_CAST({source} AS {kind}) AS {quoted(column)}")
        select.append(f"{source} AS {quoted('__raw_' + column)}")
    passed = [quoted(name) for name in schema.names if name not in typed and name not in COMPUTED]
    flags = [
        f"coalesce({rule.failing()}, false) AS {quoted(FLAG_PREFIX + str(index))}"
        for index, rule in enumerate(rules_for(spec))
    ]
    # The first landing of an event wins: ordered by when and where it landed.
    order = [
        column
        for column in ("ingested_at", "enqueued_time", "partition", "sequence_number")
        if column in typed or column in present
    ]
    return f"""
WITH typed AS (
    SELECT {", ".join(select + passed)} FROM {relation}
), unique_events AS (
    SELECT * FROM typed
    QUALIFY event_id IS NULL OR source IS NULL OR row_number() OVER (
        PARTITION BY source, event_id ORDER BY {", ".join(quoted(c) for c in order)}
    ) = 1
)
SELECT *, CAST(event_time AS DATE) AS event_date, {", ".join(flags)} FROM unique_events
"""
