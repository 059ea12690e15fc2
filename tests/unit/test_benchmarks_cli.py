"""The benchmarks' command line: the bare command lists them, every one takes --help without
running, a SIGTERM cleans up like Ctrl-C, and the simulator seeds itself afresh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.__main__ import BENCHMARKS
from benchmarks.simulate import parse_args
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit


def benchmarks(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_bare_command_and_help_list_the_benchmarks(tmp_path: Path) -> None:
    bare = benchmarks(cwd=tmp_path)
    helped = benchmarks("--help", cwd=tmp_path)
    assert (bare.returncode, helped.returncode) == (2, 0)
    for name in BENCHMARKS:
        assert name in bare.stderr and name in helped.stdout


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_takes_help_and_runs_nothing(name: str, tmp_path: Path) -> None:
    done = benchmarks(name, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"usage: python -m benchmarks {name}" in done.stdout
    assert list(tmp_path.iterdir()) == []  # no data generated, no folder left


def test_a_terminated_benchmark_removes_its_folder(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks", "durable"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("durable-bench-*")):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert list(tmp_path.glob("durable-bench-*")) == []


def test_the_simulator_takes_a_fresh_seed_unless_given_one() -> None:
    seeds = {parse_args([]).seed for _ in range(5)}
    assert len(seeds) > 1
    assert parse_args(["--seed", "7"]).seed == 7


def test_the_documents_benchmark_prints_every_figure(tmp_path: Path) -> None:
    done = benchmarks("documents", "--documents", "50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = [line.split('"metric": "')[1].split('"')[0] for line in done.stdout.splitlines()]
    assert metrics == [
        "sqlite_inserts_per_s",
        "sqlite_reads_per_s",
        "upserts_per_s",
        "point_reads_per_s",
        "patches_per_s",
        "change_feed_documents_per_s",
    ]
    assert list(tmp_path.iterdir()) == []
