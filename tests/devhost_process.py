"""Start the devhost as a real subprocess on a free loopback port, for integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_APPS = Path(__file__).resolve().parent / "fixtures" / "apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevhostProcess:
    """A devhost subprocess; `url(path)` builds addresses, `stop()` sends SIGTERM."""

    def __init__(
        self,
        script_root: Path,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.script_root = script_root
        self.data_dir = data_dir
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"devhost-{self.port}.log"
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        environment["PYTHONPATH"] = str(PROJECT_ROOT)
        self._log = open(self.log_path, "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devhost",
                "start",
                "--script-root",
                str(script_root),
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                *extra_args,
            ],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    def keys(self) -> dict[str, Any]:
        """The devhost's keys.json (written before it listens)."""
        keys: dict[str, Any] = json.loads((self.data_dir / "devhost" / "keys.json").read_text())
        return keys

    def _admin_headers(self) -> dict[str, str]:
        try:
            return {"x-functions-key": self.keys()["masterKey"]}
        except (OSError, ValueError, KeyError):
            return {}  # not written yet

    def wait_ready(self, timeout: float = 30.0) -> DevhostProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"devhost exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                status = self.url("/admin/host/status")
                answer = requests.get(status, headers=self._admin_headers(), timeout=5)
                if answer.status_code == 200:
                    return self
            except requests.RequestException:
                pass  # not listening yet, or busy starting its listeners
            time.sleep(0.1)
        raise TimeoutError(f"devhost did not start within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            output = self.output()
            if text in output:
                return output
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} did not appear within {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as in a crash."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
