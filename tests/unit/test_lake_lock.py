"""One platform process per local lake: a second one is refused, naming the first and the
remedy; the same process may build its platform again; a killed holder frees the lake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shared.bootstrap import bootstrap
from shared.config import load_settings
from shared.lakehouse.lake_lock import LakeInUse
from tests.devhost_process import PROJECT_ROOT

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX"),
]

HOLD = textwrap.dedent(
    """
    import sys, time
    from shared.bootstrap import bootstrap
    from shared.config import load_settings
    bootstrap(load_settings({"PLATFORM_DATA_DIR": sys.argv[1], "LAKE_URI": sys.argv[2]}))
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_a_second_process_on_the_lake_is_refused_until_the_first_ends(tmp_path: Path) -> None:
    lake = tmp_path / "shared-lake"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "first"), str(lake)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # Another data dir, the same lake: refused, as a second devhost would be.
        with pytest.raises(LakeInUse) as refused:
            bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "LAKE_URI": str(lake)}))
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and str(lake) in message
        assert "--data-dir" in message and "LAKE_URI" in message
        # Its own lake (the default under its data dir) is fine.
        bootstrap(load_settings({"PLATFORM_DATA_DIR": str(tmp_path / "second")}))
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "LAKE_URI": str(lake)})
        bootstrap(settings)
        bootstrap(settings)  # the same process building its platform again keeps the lock
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
