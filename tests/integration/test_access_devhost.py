"""Who may call what, through the devhost over real HTTP in `entra` mode: every route of the
app against no token, every kind of bad token, and every role (the role x route matrix), each
answer the one the permission table says and never a 500; and every request audited with no
token or card number in the records."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.identity.roles import IMPLIES, Role
from shared.openapi import PERMISSIONS, openapi_document
from tests.conftest import StartDevhost
from tests.devhost_process import PROJECT_ROOT, DevhostProcess
from tests.integration.conftest import Entra
from tests.tokens import AUDIENCE, TENANT, Issuer, unsigned

pytestmark = pytest.mark.integration

CARD = "4920777766665550"


@pytest.fixture
def issuer(entra: Entra) -> Issuer:
    return entra.issuer


def _start(
    start_devhost: StartDevhost, data_dir: Path, entra: Entra, **extra: str
) -> tuple[DevhostProcess, Path]:
    env = {
        "PLATFORM_DATA_DIR": str(data_dir),
        **entra.env,
        "AzureWebJobs.hourly_pipeline_run.Disabled": "true",
        "AzureWebJobs.nightly_table_maintenance.Disabled": "true",
        "AzureWebJobs.pipeline_run_reaper.Disabled": "true",
        "AzureWebJobs.compact_bronze.Disabled": "true",
        **extra,
    }
    return start_devhost(PROJECT_ROOT, env=env, data_dir=data_dir), data_dir


@pytest.fixture
def host(start_devhost: StartDevhost, tmp_path: Path, entra: Entra) -> tuple[DevhostProcess, Path]:
    return _start(start_devhost, tmp_path / "platform", entra, DEVHOST_DURABLE_API_KEYS="required")


def _routes() -> list[tuple[str, str, str, bool]]:
    """(method, path, permission, privileged) of every guarded operation of the app."""
    routes = []
    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            if "x-permission" not in operation:
                continue
            _, privileged = PERMISSIONS[operation["operationId"]]
            concrete = path.replace("{name}", "medallion").replace("{instance_id}", "no-such-run")
            routes.append((method.upper(), concrete, operation["x-permission"], privileged))
    return routes


def _holds(role: str, permission: str) -> bool:
    implied = {r.value for r in IMPLIES.get(Role(role), frozenset())}
    return permission == role or permission in implied


def _call(host: DevhostProcess, method: str, path: str, token: str | None) -> requests.Response:
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = None
    if path == "/api/events":
        headers["Content-Type"] = "application/json"
        body = json.dumps({"card": CARD})  # not an event: a 400 once the caller may post
    # A card number in the query of every call: the audit records keep the path only.
    params = {"note": CARD}
    return requests.request(
        method, host.url(path), headers=headers, params=params, data=body, timeout=30
    )


def _bad_tokens(issuer: Issuer, tmp_path: Path) -> dict[str, str]:
    stranger = Issuer(tmp_path / "stranger", kid="stranger")
    roles = [role.value for role in Role]
    now = int(time.time())
    return {
        "alg none": unsigned({"aud": AUDIENCE, "tid": TENANT, "oid": "x", "roles": roles}),
        "unknown key": stranger.token(roles=roles),
        "injected jku": stranger.token(headers={"jku": "https://evil.example/keys"}, roles=roles),
        "wrong audience": issuer.token(aud="api://other", roles=roles),
        "wrong tenant": issuer.token(tid="00000000-0000-0000-0000-000000000000", roles=roles),
        "expired": issuer.token(exp=now - 600, roles=roles),
        "not yet valid": issuer.token(nbf=now + 600, roles=roles),
        "tampered": issuer.token(roles=["Platform.Reader"])[:-8] + "AAAAAAAA",
        "truncated": issuer.token(roles=roles)[:40],
    }


def test_every_route_answers_as_the_permission_table_says(
    host: tuple[DevhostProcess, Path], issuer: Issuer, tmp_path: Path
) -> None:
    devhost, data_dir = host
    routes = _routes()
    assert {path for _, path, _, _ in routes} >= {"/api/events", "/api/openapi.json"}
    sent_tokens: list[str] = []
    for method, path, permission, _ in routes:
        where = f"{method} {path}"
        refused = _call(devhost, method, path, None)
        assert refused.status_code == 401, where
        assert refused.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        for kind, token in _bad_tokens(issuer, tmp_path).items():
            sent_tokens.append(token)
            answer = _call(devhost, method, path, token)
            assert answer.status_code == 401, f"{where} with a token {kind}: {answer.text}"
            assert "stranger" not in answer.text and "key-1" not in answer.text
        for role in Role:
            token = issuer.token(roles=[role.value])
            sent_tokens.append(token)
            answer = _call(devhost, method, path, token)
            assert answer.status_code != 500, f"{where} as {role}: {answer.text}"
            if _holds(role.value, permission) and permission == Role.AI_USER.value:
                # the gateway's callers are apps: a user's token holding AI.User is not one
                assert answer.status_code == 403, f"{where} as {role}: {answer.text}"
                assert answer.json()["error"]["code"] == "unknown_app"
            elif _holds(role.value, permission):
                assert answer.status_code not in (401, 403), f"{where} as {role}: {answer.text}"
            else:
                assert answer.status_code == 403, f"{where} as {role}: {answer.text}"
                assert permission in answer.json()["error"]
    assert requests.get(devhost.url("/api/health"), timeout=30).status_code in (200, 503)

    expected = {"authn_token_missing", "authn_token_invalid", "authz_fail", "request"}
    records = _audit_records(data_dir, actions=expected | {"pipeline_started"})
    # pipeline_started: the privileged action, recorded before it ran
    assert all(r["traceparent"].startswith("00-0af7651916cd43dd") for r in records)
    denied = [r for r in records if r["action"] == "authz_fail"]
    assert all(r["actor"]["kind"] == "user" and r["status"] == 403 for r in denied)
    store = _store_bytes(data_dir)
    for token in sent_tokens:  # no token (nor any of its three parts) at rest
        for part in token.split("."):
            if len(part) > 20:
                assert part.encode() not in store
    assert CARD.encode() not in store


def _audit_records(data_dir: Path, *, actions: set[str] | None = None) -> list[dict[str, Any]]:
    """The audit records in the host's store, once they hold every one of `actions` (request
    records are committed a few milliseconds after their answers)."""
    path = data_dir / "documents" / "platform.sqlite3"
    deadline = time.monotonic() + 30
    while True:
        with sqlite3.connect(path) as connection:
            rows = connection.execute(
                "SELECT body FROM documents WHERE container = 'audit'"
            ).fetchall()
        records = [json.loads(row[0]) for row in rows]
        found = [record for record in records if "action" in record]
        if not actions or actions <= {r["action"] for r in found}:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no audit record of {actions - {r['action'] for r in found}}")
        time.sleep(0.05)


def _store_bytes(data_dir: Path) -> bytes:
    found = b""
    for path in (data_dir / "documents").iterdir():
        found += path.read_bytes()
    return found


def test_a_forged_principal_header_is_ignored_outside_easyauth(
    host: tuple[DevhostProcess, Path],
) -> None:
    devhost, _ = host
    import base64

    forged = base64.b64encode(
        json.dumps(
            {
                "auth_typ": "aad",
                "claims": [
                    {"typ": "oid", "val": "admin"},
                    {"typ": "roles", "val": "Platform.Admin"},
                ],
                "role_typ": "roles",
            }
        ).encode()
    ).decode()
    answer = requests.get(
        devhost.url("/api/openapi.json"),
        headers={"X-MS-CLIENT-PRINCIPAL": forged, "X-Forwarded-For": "127.0.0.1"},
        timeout=30,
    )
    assert answer.status_code == 401
    assert re.search(r"bearer token is required", answer.json()["error"])


@pytest.mark.parametrize("keys", ["required", "off"])
def test_the_durable_management_api_takes_the_system_key_or_an_operators_token(
    start_devhost: StartDevhost, tmp_path: Path, entra: Entra, keys: str
) -> None:
    """With neither, 401 whether or not the host enforces keys; every call audited, a change
    to an instance durably before it is made."""
    extra = {"DEVHOST_DURABLE_API_KEYS": "required"} if keys == "required" else {}
    devhost, data_dir = _start(start_devhost, tmp_path / "platform", entra, **extra)
    issuer = entra.issuer
    instances = devhost.url("/runtime/webhooks/durabletask/instances")
    operator = {"Authorization": f"Bearer {issuer.token(roles=['Platform.Operator'])}"}
    reader = {"Authorization": f"Bearer {issuer.token(roles=['Platform.Reader'])}"}
    forged = {"Authorization": f"Bearer {unsigned({'roles': ['Platform.Operator']})}"}
    missing = requests.get(instances, timeout=30)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert requests.get(instances, headers=forged, timeout=30).status_code == 401
    refused = requests.get(instances, headers=reader, timeout=30)
    assert refused.status_code == 403 and "Platform.Operator" in refused.json()["message"]
    assert requests.get(instances, headers=operator, timeout=30).status_code == 200
    key = devhost.keys()["systemKeys"]["durabletask_extension"]
    assert requests.get(instances, params={"code": key}, timeout=30).status_code == 200
    wrong_key = requests.get(instances, params={"code": "not-the-key"}, timeout=30)
    assert wrong_key.status_code == 401
    purge = requests.delete(f"{instances}/no-such-instance", headers=operator, timeout=30)
    assert purge.status_code == 404
    terminate = requests.post(
        f"{instances}/no-such-instance/terminate", params={"code": key}, timeout=30
    )
    assert terminate.status_code in (404, 410)
    records = _audit_records(
        data_dir,
        actions={"authn_token_missing", "authn_token_invalid", "authz_fail", "request"}
        | {"instance_purged", "instance_terminated"},
    )
    purged = next(r for r in records if r["action"] == "instance_purged")
    assert purged["actor"]["kind"] == "user" and purged["outcome"] == "allowed"
    assert purged["resource"] == "DELETE /runtime/webhooks/durabletask/instances/no-such-instance"
    terminated = next(r for r in records if r["action"] == "instance_terminated")
    assert terminated["actor"] == {
        "kind": "system_key",
        "id": "durabletask_extension",
        "tenant": "",
    }
    assert key.encode() not in _store_bytes(data_dir)


def test_a_token_past_the_header_limit_is_431_and_a_large_one_is_read_in_bounded_time(
    host: tuple[DevhostProcess, Path], issuer: Issuer
) -> None:
    devhost, _ = host
    huge = issuer.token(roles=[f"Role.{n}" for n in range(10_000)] + ["Platform.Reader"])
    started = time.monotonic()
    answer = requests.get(
        devhost.url("/api/openapi.json"), headers={"Authorization": f"Bearer {huge}"}, timeout=30
    )
    assert answer.status_code == 431 and time.monotonic() - started < 5
    large = issuer.token(roles=[f"Role.{n}" for n in range(1_000)] + ["Platform.Reader"])
    assert len(large) < 32 * 1024
    started = time.monotonic()
    answer = requests.get(
        devhost.url("/api/openapi.json"), headers={"Authorization": f"Bearer {large}"}, timeout=30
    )
    assert answer.status_code == 200 and time.monotonic() - started < 5


def test_a_request_target_past_8_kib_is_414_as_json(host: tuple[DevhostProcess, Path]) -> None:
    devhost, _ = host
    answer = requests.get(
        devhost.url("/api/audit"), params={"top": "0" * 9000, "code": ""}, timeout=30
    )
    assert answer.status_code == 414 and "request target" in answer.json()["error"]
