"""`--data-dir` moves the platform's lake, and two devhosts never share one lake."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_data_dir_moves_the_lake_and_a_second_devhost_on_it_is_refused(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    # As local.settings.json does: PLATFORM_DATA_DIR names the default dir; the flag wins.
    settings = {"PLATFORM_DATA_DIR": str(tmp_path / "settings-dir"), "LAKE_URI": ""}
    first_dir = tmp_path / "first"
    first = start_devhost(PROJECT_ROOT, env=settings, data_dir=first_dir)
    lake = requests.get(first.url("/api/health"), timeout=10).json()["backends"]["lake"]
    assert lake["detail"].startswith(str(first_dir.resolve() / "lake")), lake
    assert not (tmp_path / "settings-dir" / "lake").exists()

    second = start_devhost(
        PROJECT_ROOT,
        env={**settings, "LAKE_URI": str(first_dir / "lake")},
        data_dir=tmp_path / "second",
        wait=False,
    )
    assert second.process.wait(60) == 2
    output = second.output()
    assert f"pid {first.process.pid}" in output and "--data-dir" in output, output
    # Its own data dir (and so its own lake) is fine.
    start_devhost(PROJECT_ROOT, env=settings, data_dir=tmp_path / "third")
