"""`python -m benchmarks gateway --quick` runs end to end (the loopback upstream, the platform's
devhost and the no-op devhost) and prints every figure beside its baseline, the ledger's
streamed usage equal to the upstream's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gateway import main

pytestmark = pytest.mark.integration


def test_prints_every_figure_with_its_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--quick", "--requests", "20"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    figures = {line["metric"]: line for line in lines}
    latencies = [
        f"{prefix}_{callers}_{q}_ms"
        for callers in ("1_caller", "10_callers")
        for prefix in ("overhead_whole", "overhead_stream", "first_event")
        for q in ("p50", "p99")
    ]
    assert set(figures) == {
        "sqlglot_parse_p50_us",
        "sql_gate_p50_us",
        "sql_gate_p99_us",
        "limit_ratio_1_caller",
        "limit_ratio_10_callers",
        "limit_ratio_100_callers",
        "noop_1_caller_p99_ms",
        "noop_10_callers_p99_ms",
        *latencies,
        "stream_usage_ledger_tokens",
    }
    assert all(line["benchmark"] == "gateway" for line in lines)
    assert all("baseline" in line or line.get("role") == "baseline" for line in lines)
    assert figures["sql_gate_p50_us"]["ratio"] > 1  # it parses the query, and more
    for name in ("limit_ratio_1_caller", "limit_ratio_10_callers", "limit_ratio_100_callers"):
        assert figures[name]["at_limiter_times"] <= 1.0  # exact at the limiter's own times
    usage = figures["stream_usage_ledger_tokens"]
    assert usage["met"] and usage["value"] == usage["upstream_reported_tokens"] > 0
    assert list(tmp_path.iterdir()) == []  # its data dirs are removed
