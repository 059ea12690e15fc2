"""A real MLflow tracking server on loopback (the `mlflow` package's own, from
requirements-dev), for the MLflow registry's tests: SQLite for runs and the model registry,
artifacts served by the server from a temp folder. No telemetry, no job runner."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.devhost_process import free_port

# MLflow's own switches: no usage data sent anywhere, no background job processes.
QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class MlflowServer:
    """`mlflow server` on a free loopback port, its store and artifacts in a temp folder; in a
    process group of its own, so that `stop()` ends its workers with it."""

    def __init__(self) -> None:
        self.location = Path(tempfile.mkdtemp(prefix="mlflow-server-"))
        self.port = free_port()
        self.log_path = self.location / "server.log"
        self._log = open(self.log_path, "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.location / 'mlflow.db'}",
                "--serve-artifacts",
                "--artifacts-destination",
                str(self.location / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **QUIET_MLFLOW},
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> MlflowServer:
        """Wait for `/health` to answer 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow exited with {self.process.returncode}: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise TimeoutError(f"mlflow did not answer within {timeout} s: {self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the group this class started
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.location, ignore_errors=True)
