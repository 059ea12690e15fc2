"""The composition root: `bootstrap` builds every service once, the pipeline and the reaper on
first use, and tests install a platform of their own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from embedded.documents.model import ContainerSpec
from embedded.documents.store import DocumentStore
from shared import bootstrap as root
from shared.bootstrap import Platform, bootstrap, current_platform
from shared.config import load_settings
from shared.documents.cosmos import CosmosDatabase
from tests.conftest import DATABRICKS

pytestmark = pytest.mark.unit


def test_every_service_is_built_once_and_shares_the_lake_access(tmp_path: Path) -> None:
    platform = bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path)}))
    assert platform.pipeline is platform.pipeline
    assert platform.reaper is platform.reaper
    assert platform.reaper._ledger is platform.pipeline.runs
    assert platform.reaper._engine is platform.pipeline.engine
    assert platform.pipeline.lake.access is platform.events.ingestor._writer._access


def test_the_pipeline_and_its_engine_are_built_on_first_use(tmp_path: Path) -> None:
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), **DATABRICKS})
    platform = bootstrap(settings)
    assert not (tmp_path / "pipeline").exists()  # nothing of the pipeline built yet
    assert platform.pipeline.engine.name == "databricks"
    assert (tmp_path / "documents" / "platform.sqlite3").exists()  # its state and ledger


def test_the_document_store_is_opened_on_first_use_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path)}))
    assert not (tmp_path / "documents").exists()
    alerts = platform.documents.container(ContainerSpec("alerts", "/accountId"))
    alerts.upsert({"id": "x", "accountId": "a1"})
    assert (
        isinstance(platform.documents, DocumentStore) and platform.documents is platform.documents
    )
    assert (tmp_path / "documents" / "platform.sqlite3").exists()
    opened: list[tuple[str, str]] = []
    monkeypatch.setattr(
        "shared.documents.cosmos.CosmosDatabase.__init__",
        lambda self, endpoint, database: opened.append((endpoint, database)),
    )
    cosmos = bootstrap(
        load_settings(
            {
                "PLATFORM_DATA_DIR": str(tmp_path),
                "COSMOS_ENDPOINT": "https://acct.documents.azure.com",
                "COSMOS_DATABASE": "ops",
            }
        )
    )
    assert opened == []  # no client (and no network) until the store is used
    assert isinstance(cosmos.documents, CosmosDatabase)
    assert opened == [("https://acct.documents.azure.com/", "ops")]


def test_the_process_platform_is_bootstrapped_once_unless_a_test_installs_one(
    platform_env: Path, installed: Callable[[Platform], Platform], tmp_path: Path
) -> None:
    first = current_platform()
    assert current_platform() is first and first.settings.data_dir == platform_env
    own = installed(bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path / "own")})))
    assert current_platform() is own
    root.install_platform(None)
    assert current_platform() is not own
