"""BATCH_ENGINE and its connection settings: defaults, the adapter, errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.batch.databricks_engine import DatabricksEngine
from shared.batch.duckdb_engine import DuckDBEngine
from shared.batch.factory import build_engine
from shared.batch.synapse_engine import SynapseEngine
from shared.config import BatchEngineKind, SettingsError, load_settings
from tests.conftest import DATABRICKS
from tests.fakes.synapse import FakeCredential

pytestmark = pytest.mark.unit


def test_duckdb_is_the_default_engine() -> None:
    settings = load_settings({})
    assert settings.batch.engine is BatchEngineKind.DUCKDB
    assert settings.batch.vacuum_retention_hours == 168
    assert isinstance(build_engine(settings), DuckDBEngine)


def test_databricks_settings_build_the_databricks_adapter() -> None:
    settings = load_settings(DATABRICKS)
    assert settings.batch.databricks is not None
    assert settings.batch.databricks.host == "https://adb-1.azuredatabricks.net"
    assert settings.batch.databricks.runner_path == "dbfs:/platform/spark_runner.py"
    assert isinstance(build_engine(settings), DatabricksEngine)


def test_synapse_settings_build_the_synapse_adapter() -> None:
    settings = load_settings(
        {"BATCH_ENGINE": "Synapse", "SYNAPSE_ENDPOINT": "https://ws.dev.azuresynapse.net"}
    )
    assert settings.batch.synapse is not None
    assert settings.batch.synapse.pipeline == "platform_gold_sql"
    engine = SynapseEngine.from_settings(settings.batch.synapse, FakeCredential())
    assert engine.name == "synapse"


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"BATCH_ENGINE": "spark"}, "BATCH_ENGINE"),
        ({**DATABRICKS, "DATABRICKS_HOST": ""}, "DATABRICKS_HOST"),
        (
            {k: v for k, v in DATABRICKS.items() if k != "DATABRICKS_CLUSTER_ID"},
            "DATABRICKS_CLUSTER_ID",
        ),
        ({"BATCH_ENGINE": "synapse"}, "SYNAPSE_ENDPOINT"),
        ({"BATCH_ENGINE": "synapse", "SYNAPSE_ENDPOINT": "http://ws"}, "SYNAPSE_ENDPOINT"),
        ({"PIPELINE_POLL_FIRST_S": "soon"}, "PIPELINE_POLL_FIRST_S"),
        ({"PIPELINE_RUN_TIMEOUT_S": "-5"}, "PIPELINE_RUN_TIMEOUT_S"),
        ({"PIPELINE_VACUUM_RETENTION_HOURS": "a week"}, "PIPELINE_VACUUM_RETENTION_HOURS"),
    ],
)
def test_a_bad_batch_setting_is_named(environ: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(environ)
    assert raised.value.setting == name
    assert name in str(raised.value)


def test_poll_and_timeout_settings_are_read() -> None:
    batch = load_settings(
        {"PIPELINE_POLL_FIRST_S": "0.5", "PIPELINE_POLL_MAX_S": "8", "PIPELINE_RUN_TIMEOUT_S": "90"}
    ).batch
    assert (batch.poll_first_s, batch.poll_max_s, batch.run_timeout_s) == (0.5, 8.0, 90.0)


def test_the_pipeline_is_wired_from_settings(tmp_path: Path) -> None:
    from shared.documents.build import open_documents
    from shared.lakehouse.access import StaticAccess
    from shared.pipeline.service import build_pipeline

    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path)})
    local = build_pipeline(settings, StaticAccess(), open_documents(settings.documents))
    assert local.engine.name == "duckdb"
    assert local.lake.root == (tmp_path / "lake").as_posix()
    assert (tmp_path / "documents" / "platform.sqlite3").exists()  # its state and ledger

    settings = load_settings(
        {"PLATFORM_DATA_DIR": str(tmp_path), "PIPELINE_RUN_TIMEOUT_S": "90", **DATABRICKS}
    )
    remote = build_pipeline(settings, StaticAccess(), open_documents(settings.documents))
    assert remote.engine.name == "databricks"  # no request made: the client comes on first use
    assert remote.run_plan().run_timeout_s == 90.0
