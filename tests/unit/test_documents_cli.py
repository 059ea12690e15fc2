"""`python -m devhost documents`: containers, a document, a query and a delete."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from devhost.cli import build_parser
from devhost.documents_cli import run
from embedded.documents.model import ContainerSpec
from embedded.documents.store import DocumentStore

pytestmark = pytest.mark.unit


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = DocumentStore(tmp_path / "documents" / "platform.sqlite3")
    alerts = store.container(ContainerSpec("alerts", "/accountId", 3600))
    for n in range(5):
        alerts.create({"id": f"a{n}", "accountId": f"acct-{n % 2}", "score": n / 10})
    store.container(ContainerSpec("quotas", "/app"))
    store.close()
    return tmp_path


def cli(data_dir: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    arguments = build_parser().parse_args(["documents", "--data-dir", str(data_dir), *args])
    return run(arguments, out), out.getvalue()


def test_containers_show_query_and_delete(data_dir: Path) -> None:
    code, text = cli(data_dir, "containers")
    assert code == 0 and text.splitlines() == [
        "alerts  partition key /accountId  ttl 3600",
        "quotas  partition key /app  ttl off",
    ]
    code, text = cli(data_dir, "show", "alerts", "a3", "--pk", "acct-1")
    assert code == 0 and json.loads(text)["score"] == 0.3
    code, text = cli(data_dir, "query", "alerts", "--where", "/score>=0.2", "--pk", "acct-0")
    assert code == 0 and [json.loads(line)["id"] for line in text.splitlines()] == ["a2", "a4"]
    code, text = cli(data_dir, "query", "alerts", "--top", "2")
    assert text.splitlines()[-1] == "(more: raise --top past 2)"
    assert cli(data_dir, "delete", "alerts", "a3", "--pk", "acct-1")[0] == 0
    assert cli(data_dir, "show", "alerts", "a3", "--pk", "acct-1")[0] == 1


def test_what_is_not_there_is_refused_plainly(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(data_dir, "show", "nothing", "x", "--pk", "1")[0] == 1
    assert "no container 'nothing' (alerts, quotas)" in capsys.readouterr().err
    assert cli(data_dir, "query", "alerts", "--where", "score")[0] == 1
    assert "a condition looks like" in capsys.readouterr().err
    assert cli(data_dir, "--database", "other", "containers")[0] == 1
    assert "no database 'other'" in capsys.readouterr().err
