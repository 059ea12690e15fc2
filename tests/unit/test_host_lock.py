"""One devhost per app and data dir: the lock refuses a second holder of the same app, names
the first, lets other apps share the data dir, and is free again once the first releases it or
its process dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devhost.host_lock import AppAlreadyRunning, HostLock
from tests.devhost_process import PROJECT_ROOT

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX"),
]


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    app = tmp_path / "app"
    first, second = HostLock(tmp_path, app), HostLock(tmp_path, app)
    other_app = HostLock(tmp_path, tmp_path / "other-app")
    first.acquire()
    first.acquire()  # taking it again in the same holder is a no-op
    with pytest.raises(AppAlreadyRunning) as refused:
        second.acquire()
    assert f"pid {os.getpid()}" in str(refused.value)
    assert f"running {app} on the data dir {tmp_path}" in str(refused.value)
    assert "--data-dir" in str(refused.value)
    other_app.acquire()  # another app may share the data dir
    other_app.release()
    first.release()
    second.acquire()
    assert second.path.read_text().splitlines() == [str(os.getpid()), str(app)]
    second.release()
    second.release()  # releasing twice is harmless


def test_a_killed_holder_leaves_the_lock_free(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from devhost.host_lock import HostLock
        lock = HostLock(Path({str(tmp_path)!r}), Path({str(tmp_path / "app")!r}))
        lock.acquire()
        print("held", flush=True)
        time.sleep(60)
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(AppAlreadyRunning, match=f"pid {holder.pid}"):
            HostLock(tmp_path, tmp_path / "app").acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        lock = HostLock(tmp_path, tmp_path / "app")
        lock.acquire()
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
