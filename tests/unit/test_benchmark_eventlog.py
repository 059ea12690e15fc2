"""`python -m benchmarks eventlog` runs end to end and prints one JSON line per figure, each
compared with the baseline of the same run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.eventlog import main

pytestmark = pytest.mark.unit


def test_prints_every_figure_with_its_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--events", "1000", "--busy-events", "500"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    figures = {line["metric"]: line for line in lines}
    assert list(figures) == [
        "sqlite_insert_rows_per_s",
        "append_events_per_s",
        "read_events_per_s",
        "append_busy_events_per_s",
        "read_busy_events_per_s",
    ]
    assert all(line["benchmark"] == "eventlog" and line["value"] > 0 for line in lines)
    baseline = figures["sqlite_insert_rows_per_s"]["value"]
    for line in lines[1:]:
        assert line["baseline"] == "sqlite_insert_rows_per_s"
        assert line["ratio"] == pytest.approx(line["value"] / baseline, abs=0.001)
    assert list(tmp_path.iterdir()) == []  # its data dir is removed


@pytest.mark.parametrize("count", ["0", "-5", "many", "1e3", ""])
def test_event_counts_must_be_whole_numbers_of_at_least_one(
    count: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["--events", count])
    assert exited.value.code == 2
    assert "--events" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
