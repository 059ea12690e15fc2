"""Gold models (one SQL file each in `gold/`) and their refresh through the BatchEngine.

A model is rebuilt only when one of its inputs has a new Delta version since its last successful
build, so a run with no new data leaves gold untouched (no new Delta version at all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.batch.engine import BatchEngine, RunState, RunStatus, SqlJob
from shared.batch.sql import ModelSqlError, referenced_tables
from shared.pipeline.lake import Lake
from shared.pipeline.specs import SILVER_SPECS
from shared.pipeline.state import PipelineStateStore

GOLD_DIR = Path(__file__).resolve().parent / "gold"
_KEYS = re.compile(r"^--\s*keys:\s*(?P<keys>.+)$", re.MULTILINE)
_EMPTY = re.compile(r"^--\s*empty_if_missing:\s*(?P<table>[\w.]+)\((?P<columns>[^)]*)\)$", re.M)


@dataclass(frozen=True)
class GoldModel:
    """A gold table's SQL (DuckDB dialect), the tables it reads, and its key columns."""

    name: str
    sql: str
    keys: tuple[str, ...]
    inputs: frozenset[str]
    empty_if_missing: Mapping[str, Mapping[str, str]]


def parse_model(name: str, sql: str) -> GoldModel:
    """A model from its SQL text; the header comments give `keys:` and `empty_if_missing:`."""
    try:
        inputs = referenced_tables(sql)
    except ModelSqlError as error:
        raise ModelSqlError(f"gold model {name}: {error}") from error
    keys_match = _KEYS.search(sql)
    keys = tuple(k.strip() for k in keys_match["keys"].split(",")) if keys_match else ()
    empty: dict[str, dict[str, str]] = {}
    for match in _EMPTY.finditer(sql):
        columns = {}
        for column in match["columns"].split(","):
            column_name, _, kind = column.strip().partition(" ")
            columns[column_name] = kind.strip()
        empty[match["table"]] = columns
    return GoldModel(name, sql, keys, inputs, empty)


def load_models(directory: Path = GOLD_DIR) -> dict[str, GoldModel]:
    """Every `*.sql` under `directory`, by file name."""
    return {
        path.stem: parse_model(path.stem, path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.sql"))
    }


def _silver_columns(table: str) -> dict[str, str] | None:
    spec = SILVER_SPECS.get(table)
    return None if spec is None else {**spec.typed, "event_date": "DATE"}


@dataclass(frozen=True)
class GoldSubmission:
    """What `GoldRunner.submit` did: nothing (inputs unchanged), or a run in the engine (a
    durable payload: `shared.pipeline.payloads` encodes it)."""

    model: str
    inputs: Mapping[str, int | None]
    run: RunState | None


class GoldRunner:
    """Submits gold models to the engine and records what a successful build was built from."""

    def __init__(
        self,
        lake: Lake,
        state: PipelineStateStore,
        engine: BatchEngine,
        *,
        models: Mapping[str, GoldModel] | None = None,
        pipeline: str = "medallion",
    ) -> None:
        self._lake = lake
        self._state = state
        self._engine = engine
        self.models = dict(models) if models is not None else load_models()
        self._pipeline = pipeline

    def input_versions(self, model: GoldModel) -> dict[str, int | None]:
        """Each input's current Delta version (None: the table does not exist yet)."""
        versions: dict[str, int | None] = {}
        for name in sorted(model.inputs):
            layer, _, table = name.partition(".")
            delta = self._lake.open(layer, table)
            versions[name] = None if delta is None else delta.version()
        return versions

    def submit(self, name: str, run_key: str = "") -> GoldSubmission:
        """Start the model's rebuild, unless it was last built from these very input versions."""
        model = self.models[name]
        versions = self.input_versions(model)
        stored = self._state.read(self._pipeline, f"gold:{name}")
        if stored and stored[0].get("inputs") == versions and self._lake.open("gold", name):
            return GoldSubmission(name, versions, None)
        empty: dict[str, Mapping[str, str]] = {}
        for table, version in versions.items():
            if version is not None:
                continue
            columns = model.empty_if_missing.get(table) or _silver_columns(table.split(".")[-1])
            if columns is None:
                raise ModelSqlError(f"gold model {name}: input {table} does not exist")
            empty[table] = columns
        job = SqlJob(
            model=name,
            sql=model.sql,
            inputs={table: self._lake.uri(*table.split(".", 1)) for table in model.inputs},
            output=self._lake.uri("gold", name),
            storage_options=self._lake.options() or {},
            empty_inputs=empty,
            run_key=run_key,
        )
        return GoldSubmission(name, versions, self._engine.submit(job))

    def state(self, run_id: str) -> RunState:
        return self._engine.state(run_id)

    def cancel(self, run_id: str) -> RunState:
        return self._engine.cancel(run_id)

    def record_success(self, submission: GoldSubmission, final: RunState) -> None:
        """Remember the inputs a successful build read, so an unchanged rerun skips the model."""
        if final.status is not RunStatus.SUCCEEDED:
            return
        key = f"gold:{submission.model}"
        stored = self._state.read(self._pipeline, key)
        document = {
            "inputs": dict(submission.inputs),
            "run_id": final.run_id,
            "engine": final.engine,
            "rows_out": final.rows_out,
        }
        self._state.write(self._pipeline, key, document, stored[1] if stored else None)
