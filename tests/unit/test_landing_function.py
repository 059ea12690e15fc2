"""The `land_file` blob trigger, called as the worker calls it, on a platform of temp folders."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

import functions.landing as landing_function
from devhost.appsettings import AppSettings
from devhost.indexing import index_app, load_app
from shared.bootstrap import Platform, bootstrap
from shared.config import load_settings
from shared.events.pseudonymize import Pseudonymizer
from shared.landing.file import NotALandingFile
from tests.devhost_process import PROJECT_ROOT
from tests.landingdata import csv_bytes, payment_record, table_rows

pytestmark = pytest.mark.unit

KEY = Pseudonymizer(b"k" * 32)

land_file = next(iter(landing_function.bp._function_builders)).build().get_user_function()


@pytest.fixture
def platform(tmp_path: Path, installed: Callable[[Platform], Platform]) -> Platform:
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "PSEUDONYM_KEY": "k" * 32})
    return installed(bootstrap(settings))


def blob(data: bytes, name: str, properties: dict[str, Any] | None = None) -> func.InputStream:
    """The InputStream the Python worker builds from the trigger's data and metadata."""
    properties = properties or {"ETag": '"0x8DC1"', "LastModified": "2024-05-01T10:00:00Z"}
    uri = f"https://acct.blob.core.windows.net/{name}"
    return func.blob.InputStream(data=data, name=name, uri=uri, blob_properties=properties)


def test_a_dropped_csv_lands_in_bronze_and_is_logged(
    platform: Platform, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = [payment_record(1), payment_record(2, card_number="4111111111111112")]
    with caplog.at_level(logging.INFO, logger=landing_function.__name__):
        land_file(blob(csv_bytes(records), "landing/payment.transaction/day1.csv"))
    lake = tmp_path / "lake"
    assert [r["transaction_id"] for r in table_rows(lake, "payment_transaction")] == ["tx-1"]
    assert [r["sequence_number"] for r in table_rows(lake, "deadletter")] == [3]
    [logged] = [json.loads(r.getMessage()) for r in caplog.records]
    assert logged["landed"] == {"payment_transaction": 1, "deadletter": 1}
    assert logged["file"] == "landing/payment.transaction/day1.csv"
    assert records[0]["card_number"] not in caplog.text


def test_a_blob_without_a_version_fails_so_the_host_can_poison_it(platform: Platform) -> None:
    with pytest.raises(NotALandingFile):
        land_file(blob(b"a,b\n", "landing/payment.transaction/x.csv", {"ContentLength": 4}))


def test_the_trigger_watches_the_landing_container(platform_env: Path) -> None:
    specs = index_app(load_app(PROJECT_ROOT), AppSettings({}, environ={}))
    [spec] = [s for s in specs if s.name == "land_file"]
    assert spec.trigger.type.lower() == "blobtrigger"
    assert spec.trigger.get("path") == "landing/{name}"
    assert spec.trigger.get("connection") == "AzureWebJobsStorage"
