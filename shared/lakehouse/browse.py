"""Look at the lake without writing Python: `python -m shared.lakehouse.browse` (or `make lake`)
lists every Delta table of the lakehouse with its rows, version and last commit, and
`--show LAYER/TABLE` prints a table's first rows.

The lake is the platform's (`LAKE_URI`, by default `<PLATFORM_DATA_DIR>/lake`), reached with the
same access as ingestion. Row counts come from the commit statistics, so listing reads no data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from shared.config import Adapter, SettingsError, load_settings
from shared.lakehouse.access import lake_access

LAYERS = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class TableSummary:
    """One Delta table: where it is, its rows (from the commit statistics), version and age."""

    name: str
    rows: int | None
    version: int
    committed: dt.datetime | None


def local_tables(root: Path) -> list[str]:
    """`layer/table` of every Delta table under a local lake, in order."""
    found = []
    for layer in LAYERS:
        folder = root / layer
        if folder.is_dir():
            found += [
                f"{layer}/{entry.name}"
                for entry in sorted(folder.iterdir())
                if (entry / "_delta_log").is_dir()
            ]
    return found


def summarize(uri: str, name: str, options: dict[str, str] | None) -> TableSummary:
    table = DeltaTable(uri, storage_options=options)
    records = table.get_add_actions(flatten=True).column("num_records").to_pylist()
    rows = None if None in records else int(sum(records))
    last = table.history(1)
    stamp = last[0].get("timestamp") if last else None
    committed = dt.datetime.fromtimestamp(stamp / 1000, dt.UTC) if stamp else None
    return TableSummary(name, rows, table.version(), committed)


def render(summaries: Sequence[TableSummary], now: dt.datetime) -> str:
    """A plain text table of the summaries."""
    rows = [["TABLE", "ROWS", "VERSION", "LAST COMMIT (UTC)", "AGE"]]
    for s in summaries:
        when = s.committed.strftime("%Y-%m-%d %H:%M:%S") if s.committed else "?"
        age = _age(now - s.committed) if s.committed else "?"
        rows.append([s.name, "?" if s.rows is None else f"{s.rows:,}", str(s.version), when, age])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _age(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def show(uri: str, options: dict[str, str] | None, count: int, out: TextIO) -> None:
    """Print the first `count` rows of a table, one `column: value` block per row."""
    table = DeltaTable(uri, storage_options=options)
    batch = table.to_pyarrow_dataset().head(count, use_threads=False)
    for index, row in enumerate(batch.to_pylist()):
        out.write(f"-- row {index + 1}\n")
        width = max(map(len, row), default=0)
        for column, value in row.items():
            out.write(f"{column:<{width}}  {_shown(value)}\n")
    if batch.num_rows == 0:
        out.write("(no rows)\n")


def _shown(value: Any) -> str:
    text = value.isoformat() if isinstance(value, dt.datetime | dt.date) else str(value)
    return text if len(text) <= 120 else text[:119] + "…"


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.lakehouse.browse", description=__doc__)
    parser.add_argument("--show", metavar="LAYER/TABLE", help="print a table's first rows")
    parser.add_argument("--rows", type=int, default=5, help="how many rows --show prints")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    try:
        settings = load_settings()
    except SettingsError as error:
        parser.error(str(error))
    root = settings.lake.uri
    options, _ = lake_access(settings.lake).current()
    if args.show:
        layer, _, table = args.show.partition("/")
        if layer not in LAYERS or table in ("", ".", "..") or "/" in table:
            parser.error("--show takes LAYER/TABLE, e.g. gold/merchant_daily")
        try:
            show(f"{root}/{args.show}", options, args.rows, out)
        except TableNotFoundError:
            print(f"no table {args.show} in {root} (yet)", file=sys.stderr)
            return 1
        return 0
    if settings.lake.adapter is not Adapter.LOCAL:
        parser.error("listing takes a local lake; use --show LAYER/TABLE for one on ADLS")
    names = local_tables(Path(root))
    if not names:
        out.write(f"no Delta tables in {root} yet: post events (make run) and they appear\n")
        return 0
    summaries = [summarize(f"{root}/{name}", name, options) for name in names]
    out.write(render(summaries, dt.datetime.now(dt.UTC)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
