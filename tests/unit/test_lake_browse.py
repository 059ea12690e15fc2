"""`make lake`: the lake's tables with rows, versions and last commits, and a table's rows."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from shared.lakehouse.browse import main

pytestmark = pytest.mark.unit


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LAKE_URI", raising=False)
    root = tmp_path / "lake"
    rows = pa.table({"id": ["a", "b", "c"], "amount": [1.5, 2.0, 3.25]})
    write_deltalake(str(root / "gold" / "merchant_daily"), rows)
    write_deltalake(str(root / "gold" / "merchant_daily"), rows.slice(0, 1), mode="append")
    write_deltalake(str(root / "bronze" / "iot_telemetry"), rows.slice(0, 2))
    (root / "silver" / "not_a_table").mkdir(parents=True)
    return root


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out), out.getvalue()


def test_the_tables_are_listed_with_rows_versions_and_freshness(lake: Path) -> None:
    code, text = run()
    header, bronze, gold = text.splitlines()
    assert code == 0 and header.split()[:3] == ["TABLE", "ROWS", "VERSION"]
    assert bronze.split()[:3] == ["bronze/iot_telemetry", "2", "0"]
    assert gold.split()[:3] == ["gold/merchant_daily", "4", "1"]
    assert dt.datetime.now(dt.UTC).strftime("%Y-%m-%d") in gold and "s ago" in gold


def test_a_table_shows_its_first_rows(lake: Path) -> None:
    code, text = run("--show", "gold/merchant_daily", "--rows", "2")
    assert code == 0
    assert text.count("-- row") == 2 and "amount  1.5" in text


def test_an_unknown_or_malformed_table_is_refused(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--show", "gold/nothing")[0] == 1
    assert "no table gold/nothing" in capsys.readouterr().err
    for bad in ("nothing", "attic/x", "gold/a/b", "gold/..", "gold/"):
        with pytest.raises(SystemExit) as exited:
            run("--show", bad)
        assert exited.value.code == 2


def test_an_empty_lake_says_how_tables_appear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LAKE_URI", raising=False)
    code, text = run()
    assert code == 0 and "make run" in text
