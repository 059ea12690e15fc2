"""DuckDBEngine: the default BatchEngine, running a model in process over Delta tables via Arrow."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from shared.batch.engine import BatchError, RunState, RunStatus, SqlJob, UnknownRun
from shared.batch.sql import ModelSqlError, duckdb_sql

_KEPT_STATES = 1000


class DuckDBEngine:
    """Runs each job to completion inside `submit`: DuckDB reads the inputs as Arrow datasets
    (projection and filters pushed down, nothing loaded whole) and the result streams into Delta.
    """

    name = "duckdb"

    def __init__(
        self,
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_dir: Path | None = None,
    ) -> None:
        self._threads = threads
        self._memory_limit = memory_limit
        self._temp_dir = temp_dir
        self._states: OrderedDict[str, RunState] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, job: SqlJob) -> RunState:
        run_id = f"duckdb-{uuid.uuid4().hex}"
        try:
            rows = self._run(job)
            state = RunState(self.name, run_id, RunStatus.SUCCEEDED, rows_out=rows)
        except (duckdb.Error, ModelSqlError, _MissingInput) as error:
            state = RunState(self.name, run_id, RunStatus.FAILED, message=f"{job.model}: {error}")
        except (OSError, DeltaError) as error:
            raise BatchError(f"{job.model}: {error}", transient=True) from error
        self._remember(state)
        return state

    def state(self, run_id: str) -> RunState:
        with self._lock:
            if run_id not in self._states:
                raise UnknownRun(f"no DuckDB run {run_id} in this process")
            return self._states[run_id]

    def cancel(self, run_id: str) -> RunState:
        return self.state(run_id)  # a DuckDB run is over before anyone can cancel it

    def query(self, job: SqlJob) -> pa.Table:
        """The model's result without writing it (for tests, benchmarks and previews)."""
        with self._connect() as connection:
            return self._relation(connection, job).to_arrow_table()

    def _run(self, job: SqlJob) -> int:
        with self._connect() as connection:
            reader = self._relation(connection, job).to_arrow_reader()
            counted = _Counted(reader)
            write_deltalake(
                job.output,
                pa.RecordBatchReader.from_batches(reader.schema, counted),
                mode="overwrite",
                schema_mode="overwrite",
                storage_options=dict(job.storage_options) or None,
            )
            return counted.rows

    def _connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, str | bool | int | float | list[str]] = {}
        if self._threads:
            config["threads"] = self._threads
        if self._memory_limit:
            config["memory_limit"] = self._memory_limit
        if self._temp_dir:
            config["temp_directory"] = str(self._temp_dir)
        connection = duckdb.connect(config=config)
        connection.execute("SET TimeZone = 'UTC'")  # a day or an hour is a UTC day or hour
        return connection

    def _relation(
        self, connection: duckdb.DuckDBPyConnection, job: SqlJob
    ) -> duckdb.DuckDBPyRelation:
        relations: dict[str, str] = {}
        for index, (name, uri) in enumerate(sorted(job.inputs.items())):
            if name in job.empty_inputs:
                continue
            relation = f"input_{index}"
            connection.register(relation, _dataset(name, uri, job))
            relations[name] = relation
        return connection.sql(duckdb_sql(job.sql, relations, job.empty_inputs))

    def _remember(self, state: RunState) -> None:
        with self._lock:
            self._states[state.run_id] = state
            while len(self._states) > _KEPT_STATES:
                self._states.popitem(last=False)


class _MissingInput(LookupError):
    pass


def _dataset(name: str, uri: str, job: SqlJob) -> object:
    try:
        table = DeltaTable(uri, storage_options=dict(job.storage_options) or None)
    except TableNotFoundError as error:
        raise _MissingInput(f"input {name} has no Delta table at {uri}") from error
    return table.to_pyarrow_dataset()


class _Counted:
    """Passes record batches through, counting rows, so the write never holds the whole result."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._reader = reader
        self.rows = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self._reader:
            self.rows += batch.num_rows
            yield batch
