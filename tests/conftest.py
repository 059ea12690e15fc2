"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devhost_process import FIXTURE_APPS, DevhostProcess

StartDevhost = Callable[..., DevhostProcess]
# Settings of a Databricks batch engine (nothing is called: its client comes on first use).
DATABRICKS = {
    "BATCH_ENGINE": "databricks",
    "DATABRICKS_HOST": "https://adb-1.azuredatabricks.net/",
    "DATABRICKS_CLUSTER_ID": "0101-abc",
    "DATABRICKS_TOKEN": "dapi-x",
}


@pytest.fixture
def start_devhost(tmp_path: Path) -> Iterator[StartDevhost]:
    """Start a devhost on a fixture app (a name under tests/fixtures/apps, or a path)."""
    started: list[DevhostProcess] = []

    def start(
        app: str | Path,
        *,
        env: dict[str, str] | None = None,
        wait: bool = True,
        data_dir: Path | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> DevhostProcess:
        root = app if isinstance(app, Path) else FIXTURE_APPS / app
        process = DevhostProcess(
            root, data_dir or tmp_path / "data", env=env, port=port, extra_args=extra_args
        )
        started.append(process)
        return process.wait_ready() if wait else process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def platform_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the process's platform at a fresh data dir, and bootstrap it again afterwards."""
    from shared.bootstrap import install_platform

    data_dir = tmp_path / "platform"
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(data_dir))
    install_platform(None)
    yield data_dir
    install_platform(None)


@pytest.fixture
def installed() -> Iterator[Callable[[Any], Any]]:
    """Install a platform of the test's own (`installed(bootstrap(settings))`, or one with
    fakes) as the process's, for the triggers to use; the next test bootstraps again."""
    from shared.bootstrap import install_platform

    def install(platform: Any) -> Any:
        install_platform(platform)
        return platform

    yield install
    install_platform(None)
