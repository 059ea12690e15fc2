"""Azurite, the Azure Storage emulator, from the project's node_modules, for integration tests."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.devhost_process import PROJECT_ROOT, free_port

AZURITE = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"


class Azurite:
    """One Azurite process on free loopback ports, with its data in a temp folder."""

    def __init__(self) -> None:
        self.location = Path(tempfile.mkdtemp(prefix="azurite-"))
        self.blob_port, queue_port, table_port = free_port(), free_port(), free_port()
        self.log_path = self.location / "azurite.log"
        self._log = open(self.log_path, "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(AZURITE),
                "--silent",
                "--location",
                str(self.location / "data"),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.blob_port),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(queue_port),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(table_port),
                "--skipApiVersionCheck",
                "--loose",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}"

    def wait_ready(self, timeout: float = 30.0) -> Azurite:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"azurite exited with {self.process.returncode}: {self.output()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.blob_port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"azurite did not listen within {timeout} s: {self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        from shared.lakehouse.access import AZURITE_ACCOUNT, AZURITE_KEY

        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.blob_endpoint}/{AZURITE_ACCOUNT};"
        )
        with BlobServiceClient.from_connection_string(connection) as service:
            service.create_container(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                # Azurite closes its services on SIGTERM but its node process lingers.
                self.process.wait(2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.location, ignore_errors=True)
