"""Batch inference: a version scores silver (or a gold table of the contract) into
`gold/<model>_scores` with the features training computes, one row per event and source, in
memory that does not grow with the table; what cannot be scored is refused or counted."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from shared.features.offline import point_in_time
from shared.models import fraud, maintenance
from shared.models.batch_scoring import BadSource, BatchScoreRequest, BatchScoring
from shared.models.champions import load_version
from shared.models.datasets import MissingData, Reads, bronze_rows
from shared.models.registry import ModelVersionNotFound
from shared.models.service import Models
from shared.models.training import TrainingRequest
from shared.pipeline.lake import Lake
from tests.modeldata import land_history, refresh, trained_models

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch") / "lake"
    land_history(root, days=3, rate=0.5, seed=5, label_delay_scale=0.2)
    refresh(root)
    return root


@pytest.fixture(scope="module")
def models(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Models:
    return trained_models(lake, tmp_path_factory.mktemp("registry"), ("fraud", "maintenance"))


@pytest.fixture
def scoring(lake: Path, models: Models, tmp_path: Path) -> BatchScoring:
    return BatchScoring(Lake(str(lake)), models, temp_dir=tmp_path / "spill", chunk_rows=500)


def _scores(lake: Path, model: str) -> pa.Table:
    return DeltaTable(str(lake / "gold" / f"{model}_scores")).to_pyarrow_table()


@pytest.mark.parametrize("module", [fraud, maintenance])
def test_silver_is_scored_with_the_features_training_computes(
    scoring: BatchScoring, models: Models, lake: Path, module: object
) -> None:
    name = module.NAME  # type: ignore[attr-defined]
    features = module.FEATURES  # type: ignore[attr-defined]
    result = scoring.run(BatchScoreRequest(name, run_id="batch-1"), NOW)
    rows = bronze_rows(Lake(str(lake)), Reads(), features.event_type, module.COLUMNS)  # type: ignore[attr-defined]
    champion = load_version(models, name, 1)
    matrix = np.asarray(
        [[found[n] for n in champion.features] for _, found in point_in_time(features, rows)],
        dtype=np.float32,
    )
    expected = dict(
        zip([row["event_id"] for row in rows], champion.probabilities(matrix), strict=True)
    )
    table = _scores(lake, name).filter(pa.compute.equal(pa.compute.field("source"), result.source))
    assert result.rows_scored == table.num_rows == len(rows) and result.rows_skipped == 0
    got = dict(zip(table["event_id"].to_pylist(), table["score"].to_pylist(), strict=True))
    assert got.keys() == expected.keys()
    assert max(abs(got[key] - float(expected[key])) for key in got) <= 1e-6
    decisions = table["decision"].to_pylist()
    assert sum(decisions) == result.alerts
    assert set(table["model_version"].to_pylist()) == {1}
    assert set(table["run_id"].to_pylist()) == {"batch-1"}
    assert result.source == f"silver.{features.event_type.replace('.', '_')}"
    assert result.source_version == DeltaTable(str(lake / "silver" / result.source[7:])).version()


def test_a_rerun_replaces_its_source_and_leaves_other_sources(
    scoring: BatchScoring, lake: Path
) -> None:
    first = scoring.run(BatchScoreRequest("fraud"), NOW)
    recent = lake / "gold" / "recent_payments"
    silver = DeltaTable(str(lake / "silver" / "payment_transaction")).to_pyarrow_table()
    write_deltalake(str(recent), silver.slice(silver.num_rows // 2), mode="overwrite")
    other = scoring.run(BatchScoreRequest("fraud", source="gold.recent_payments"), NOW)
    again = scoring.run(BatchScoreRequest("fraud", run_id="again"), NOW)
    table = _scores(lake, "fraud")
    by_source = table.group_by("source").aggregate([("event_id", "count_distinct")])
    counts = dict(
        zip(
            by_source["source"].to_pylist(),
            by_source["event_id_count_distinct"].to_pylist(),
            strict=True,
        )
    )
    assert counts == {first.source: first.rows_scored, other.source: other.rows_scored}
    assert table.num_rows == first.rows_scored + other.rows_scored
    assert other.rows_scored == silver.num_rows - silver.num_rows // 2
    assert again.output_version > other.output_version > first.output_version


def test_a_chosen_version_scores_instead_of_the_champion(lake: Path, tmp_path: Path) -> None:
    models = trained_models(lake, tmp_path / "registry", ("maintenance",))
    models.training.train(TrainingRequest("maintenance", run_id="second"))
    scoring = BatchScoring(Lake(str(lake)), models, temp_dir=tmp_path / "spill")
    assert scoring.run(BatchScoreRequest("maintenance"), NOW).version == 1  # the champion
    assert scoring.run(BatchScoreRequest("maintenance", version=2), NOW).version == 2
    assert set(_scores(lake, "maintenance")["model_version"].to_pylist()) == {2}
    with pytest.raises(ModelVersionNotFound):
        scoring.run(BatchScoreRequest("maintenance", version=9), NOW)


def test_memory_does_not_grow_with_the_table(models: Models, lake: Path, tmp_path: Path) -> None:
    """The fold holds one entity's state and the scorer one chunk: from the first chunk on, a
    table of four times the rows and accounts peaks at about the same Python memory. (DuckDB's
    scan and sort before it are bounded by its `memory_limit`.)"""
    silver = DeltaTable(str(lake / "silver" / "payment_transaction")).to_pyarrow_table()
    quarter = silver.slice(0, silver.num_rows // 4)
    connection = duckdb.connect()
    connection.register("quarter", quarter)
    copies = " UNION ALL ".join(
        f"SELECT * REPLACE (event_id || '-{n}' AS event_id, account_id || '-{n}' AS account_id) "
        "FROM quarter"
        for n in range(4)
    )
    write_deltalake(str(lake / "gold" / "payments_x1"), quarter, mode="overwrite")
    write_deltalake(
        str(lake / "gold" / "payments_x4"),
        connection.sql(copies).to_arrow_table(),
        mode="overwrite",
    )

    def first_chunk(rows: int) -> None:
        if rows <= 200:
            tracemalloc.reset_peak()

    scoring = BatchScoring(Lake(str(lake)), models, chunk_rows=200, on_chunk=first_chunk)

    def peak(source: str) -> tuple[int, int]:
        tracemalloc.start()
        try:
            rows = scoring.run(BatchScoreRequest("fraud", source=source), NOW).rows_scored
            return rows, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small_rows, small = peak("gold.payments_x1")
    large_rows, large = peak("gold.payments_x4")
    assert large_rows == 4 * small_rows
    assert large < 1.3 * small, (small, large)


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (BatchScoreRequest("recommendations"), BadSource, "is not scored in batch"),
        (BatchScoreRequest("nope" * 40), BadSource, "is not scored in batch"),
        (BatchScoreRequest("fraud", source="silver"), BadSource, "<silver|gold>.<table>"),
        (BatchScoreRequest("fraud", source="bronze.payment_transaction"), BadSource, "<silver|"),
        (BatchScoreRequest("fraud", source="gold.x'; DROP"), BadSource, "<silver|gold>"),
        (BatchScoreRequest("fraud", source="gold.../../etc"), BadSource, "<silver|gold>"),
        (BatchScoreRequest("fraud", source="gold.nothing_here"), MissingData, "no table"),
        (BatchScoreRequest("fraud", source="gold.merchant_daily"), BadSource, "lacks the columns"),
        (BatchScoreRequest("fraud", source="silver.iot_telemetry"), BadSource, "account_id"),
    ],
)
def test_what_cannot_be_scored_is_refused_saying_why(
    scoring: BatchScoring, request_: BatchScoreRequest, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("|", r"\|").replace(".", r"\.")):
        scoring.run(request_, NOW)


def test_without_a_champion_batch_scoring_says_how_to_get_one(lake: Path, tmp_path: Path) -> None:
    models = trained_models(lake, tmp_path / "registry", ())
    with pytest.raises(MissingData, match="POST /api/models/fraud/train"):
        BatchScoring(Lake(str(lake)), models).run(BatchScoreRequest("fraud"), NOW)


def test_rows_that_cannot_be_read_are_skipped_and_counted(
    scoring: BatchScoring, lake: Path
) -> None:
    """A gold table's NULL or unreadable values skip their rows (the intake would have refused
    those events); the rest of each entity's rows are scored."""
    silver = DeltaTable(str(lake / "silver" / "payment_transaction")).to_pyarrow_table()
    rows = silver.slice(0, 200).to_pylist()
    hostile = [
        {**rows[0], "event_id": "null-amount", "amount": None},
        {**rows[1], "event_id": "no-time", "event_time": None},
        {**rows[2], "event_id": None},
        {**rows[3], "event_id": "year-1", "event_time": dt.datetime(1, 1, 1, tzinfo=dt.UTC)},
        {
            **rows[4],
            "event_id": "year-9999",
            "event_time": dt.datetime(9999, 12, 31, tzinfo=dt.UTC),
        },
        {**rows[5], "event_id": "huge", "amount": None, "country": "\x00" * 300},
    ]
    table = pa.Table.from_pylist(rows + hostile, schema=silver.schema)
    write_deltalake(str(lake / "gold" / "hostile_payments"), table, mode="overwrite")
    result = scoring.run(BatchScoreRequest("fraud", source="gold.hostile_payments"), NOW)
    scored = _scores(lake, "fraud").filter(
        pa.compute.equal(pa.compute.field("source"), "gold.hostile_payments")
    )
    ids = set(scored["event_id"].to_pylist())
    assert {"year-1", "year-9999"} <= ids and not ids & {"null-amount", "huge", "no-time"}
    assert result.rows_skipped == 4
    assert result.rows_scored == len(ids) == 202
    assert all(0.0 <= score <= 1.0 for score in scored["score"].to_pylist())
