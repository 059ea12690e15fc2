"""`python -m devhost instances` against a running devhost."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.durable_http import start, wait_for

pytestmark = pytest.mark.integration


def instances(host: DevhostProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devhost", "instances", "--url", host.base_url, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_list_show_terminate_and_purge(start_devhost: StartDevhost) -> None:
    host = start_devhost("durable_features")
    done = start(host, "sequence")
    wait_for(host, done)
    waiting = start(host, "approval")
    wait_for(host, waiting, ("Running",))

    listed = instances(host, "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["INSTANCE", "NAME", "STATUS", "CREATED", "UPDATED"]
    assert any(row.split()[:3] == [done, "sequence", "Completed"] for row in rows)
    assert any(row.split()[:3] == [waiting, "approval", "Running"] for row in rows)
    running_only = instances(host, "list", "--status", "Running").stdout
    assert waiting in running_only and done not in running_only
    after = subprocess.run(  # the options also go after the action
        [sys.executable, "-m", "devhost", "instances", "list", "--url", host.base_url],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert after.returncode == 0 and waiting in after.stdout, after.stderr

    shown = instances(host, "show", done, "--output")
    assert shown.returncode == 0, shown.stderr
    assert "runtimeStatus   Completed" in shown.stdout
    assert shown.stdout.count("TaskCompleted") == 3
    assert '"Hello Tokyo!"' in shown.stdout
    # The output, a list, is pretty-printed: one city a line, under its field name.
    assert "output          [\n" + " " * 18 + '"Hello Tokyo!",' in shown.stdout

    terminated = instances(host, "terminate", waiting, "--reason", "ops")
    assert terminated.returncode == 0, terminated.stderr
    assert wait_for(host, waiting)["runtimeStatus"] == "Terminated"

    purged = instances(host, "purge", done)
    assert purged.stdout.strip() == "purged 1 instance(s)"
    purged_all = instances(host, "purge", "--status", "Terminated")
    assert purged_all.stdout.strip() == "purged 1 instance(s)"
    assert "(none)" in instances(host, "list").stdout

    missing = instances(host, "show", "nope")
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr


def test_an_unreachable_devhost_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devhost", "instances", "--url", "http://127.0.0.1:9", "list"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot reach the devhost" in result.stderr
