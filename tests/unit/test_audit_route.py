"""`GET /api/audit`: filters checked strictly (400 naming the parameter), newest first with a
continuation, 503 when the trail cannot answer; and the daily check's timer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import azure.functions as func
import pytest

from functions import audit as audit_function
from shared.audit.events import AuditUnavailable
from shared.bootstrap import current_platform
from tests.functions import blueprint_function, user_function

pytestmark = pytest.mark.unit

LOOPBACK = {"x-forwarded-for": "127.0.0.1"}  # the local developer, who holds every role


def _function(name: str) -> Any:
    return blueprint_function(audit_function.bp, name)


def _get(**params: str) -> func.HttpResponse:
    request = func.HttpRequest("GET", "/api/audit", body=b"", headers=LOOPBACK, params=params)
    response: func.HttpResponse = _function("audit_records")(request)
    return response


def test_records_come_newest_first_with_a_continuation(platform_env: Path) -> None:
    for _ in range(3):
        assert _get().status_code == 200  # each request leaves a record
    current_platform().audit.flush()
    first = json.loads(_get(top="2").get_body())
    assert len(first["records"]) == 2 and first["continuation"]
    times = [r["time"] for r in first["records"]]
    assert times == sorted(times, reverse=True)
    rest = json.loads(_get(top="2", continuation=first["continuation"]).get_body())
    assert rest["records"] and rest["records"][0]["id"] not in {r["id"] for r in first["records"]}
    mine = json.loads(_get(actor="local-developer", action="request", outcome="success").get_body())
    assert all(r["actor"]["id"] == "local-developer" for r in mine["records"])


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"top": "0"}, "top"),
        ({"top": "1001"}, "top"),
        ({"top": "ten"}, "top"),
        ({"top": "9" * 40}, "top"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-07 10:00:00Z"}, "since"),
        ({"since": "2026-12-07T10:00:00"}, "since"),
        ({"since": "2026-02-30T10:00:00Z"}, "since"),
        ({"outcome": "maybe"}, "outcome"),
        ({"actor": "x" * 200}, "actor"),
        ({"continuation": "not-a-token"}, "continuation"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    platform_env: Path, params: dict[str, str], named: str
) -> None:
    answer = _get(**params)
    assert answer.status_code == 400
    assert named in json.loads(answer.get_body())["error"]


def test_a_trail_that_cannot_answer_is_503(platform_env: Path) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise AuditUnavailable("the audit store is unavailable")

    with mock.patch.object(audit_function, "search", down):
        assert _get().status_code == 503


def test_the_daily_check_closes_hours_and_walks_every_chain(
    platform_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _get()
    current_platform().audit.flush()
    with caplog.at_level("INFO"):
        user_function(audit_function.bp, "verify_audit_trail")(mock.Mock())
    assert "0 broken" in caplog.text
