"""The platform's own app runs on the devhost and reports its health."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_health_is_200_with_every_backend(start_devhost: StartDevhost, tmp_path: Path) -> None:
    data_dir = tmp_path / "platform"
    host = start_devhost(PROJECT_ROOT, env={"PLATFORM_DATA_DIR": str(data_dir)}, data_dir=data_dir)
    response = requests.get(host.url("/api/health"), timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "healthy"
    assert body["backends"]["lake"] == {
        **body["backends"]["lake"],
        "adapter": "local",
        "ready": True,
    }


def test_bad_setting_stops_start_up_with_its_name(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    host = start_devhost(
        PROJECT_ROOT,
        env={"PLATFORM_DATA_DIR": str(tmp_path / "platform"), "LAKE_URI": "s3://nope"},
        wait=False,
    )
    assert host.process.wait(60) == 2
    assert "setting LAKE_URI" in host.output()
