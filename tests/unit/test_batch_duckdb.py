"""DuckDBEngine: runs a model in process, streams the result into Delta, reports failures."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from shared.batch.duckdb_engine import DuckDBEngine
from shared.batch.engine import RunState, RunStatus, SqlJob, UnknownRun
from shared.pipeline.payloads import decode, encode

pytestmark = pytest.mark.unit


@pytest.fixture
def numbers(tmp_path: Path) -> str:
    uri = str(tmp_path / "silver" / "numbers")
    write_deltalake(uri, pa.table({"k": ["a", "b", "a"], "v": [1, 2, 3]}))
    return uri


def _job(
    tmp_path: Path,
    numbers: str,
    sql: str = "SELECT k, sum(v) AS total FROM silver.numbers GROUP BY k",
) -> SqlJob:
    return SqlJob("totals", sql, {"silver.numbers": numbers}, str(tmp_path / "gold" / "totals"))


def test_a_model_runs_to_completion_inside_submit(tmp_path: Path, numbers: str) -> None:
    engine = DuckDBEngine(threads=1)
    state = engine.submit(_job(tmp_path, numbers))

    assert state.status is RunStatus.SUCCEEDED
    assert state.rows_out == 2
    assert engine.state(state.run_id) == state
    written = DeltaTable(str(tmp_path / "gold" / "totals")).to_pyarrow_table()
    assert dict(
        zip(written.column("k").to_pylist(), written.column("total").to_pylist(), strict=True)
    ) == {"a": 4, "b": 2}


def test_a_rerun_replaces_the_output_rather_than_appending(tmp_path: Path, numbers: str) -> None:
    engine = DuckDBEngine(threads=1)
    engine.submit(_job(tmp_path, numbers))
    engine.submit(_job(tmp_path, numbers))
    assert DeltaTable(str(tmp_path / "gold" / "totals")).to_pyarrow_table().num_rows == 2


def test_bad_sql_is_a_failed_run_with_the_message(tmp_path: Path, numbers: str) -> None:
    state = DuckDBEngine().submit(_job(tmp_path, numbers, "SELECT nope FROM silver.numbers"))
    assert state.status is RunStatus.FAILED
    assert "nope" in state.message and state.message.startswith("totals:")


def test_a_missing_input_table_is_a_failed_run(tmp_path: Path) -> None:
    state = DuckDBEngine().submit(_job(tmp_path, str(tmp_path / "silver" / "absent")))
    assert state.status is RunStatus.FAILED
    assert "no Delta table" in state.message


def test_an_empty_input_reads_as_no_rows(tmp_path: Path) -> None:
    job = SqlJob(
        "totals",
        "SELECT k, count(*) AS n FROM silver.absent GROUP BY k",
        {"silver.absent": str(tmp_path / "silver" / "absent")},
        str(tmp_path / "gold" / "totals"),
        empty_inputs={"silver.absent": {"k": "VARCHAR"}},
    )
    state = DuckDBEngine().submit(job)
    assert state.status is RunStatus.SUCCEEDED and state.rows_out == 0
    assert DeltaTable(job.output).to_pyarrow_table().column_names == ["k", "n"]


def test_unknown_runs_are_reported(tmp_path: Path) -> None:
    with pytest.raises(UnknownRun):
        DuckDBEngine().state("duckdb-nope")


def test_cancelling_a_finished_run_answers_its_final_state(tmp_path: Path, numbers: str) -> None:
    engine = DuckDBEngine()
    state = engine.submit(_job(tmp_path, numbers))
    assert engine.cancel(state.run_id).status is RunStatus.SUCCEEDED


def test_query_previews_without_writing(tmp_path: Path, numbers: str) -> None:
    job = _job(tmp_path, numbers)
    assert DuckDBEngine().query(job).num_rows == 2
    assert not (tmp_path / "gold").exists()


def test_run_states_survive_a_json_round_trip() -> None:
    state = RunState("databricks", "42", RunStatus.FAILED, "boom", rows_out=None)
    wire = encode(state)
    assert wire == {
        "engine": "databricks",
        "run_id": "42",
        "status": "failed",
        "message": "boom",
        "rows_out": None,
    }
    assert decode(json.loads(json.dumps(wire)), RunState) == state
    assert RunStatus.CANCELLED.terminal and not RunStatus.RUNNING.terminal
