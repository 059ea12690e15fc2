"""The devhost as a local token issuer over real HTTP: its well-known documents at the host's
root, and a token from `python -m devhost token` that verifies against the JWKS it serves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from embedded.identity.local_issuer import (
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    LOCAL_TENANT_ID,
    jwks_path,
)
from shared.identity.principal import AuthenticationError
from shared.identity.tokens import JwksKeys, TokenRules, TokenValidator
from tests.conftest import StartDevhost
from tests.devhost_process import FIXTURE_APPS, PROJECT_ROOT

pytestmark = pytest.mark.integration
RULES = TokenRules(LOCAL_TENANT_ID, (LOCAL_AUDIENCE,), (LOCAL_ISSUER,))


def mint(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devhost", "token", "--data-dir", str(data_dir), *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_cli_token_verifies_against_the_served_jwks(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    host = start_devhost("http_basic", data_dir=data_dir)
    assert jwks_path(data_dir).exists()  # written at start-up, before any request
    assert "token issuer: " in host.output()

    discovery = requests.get(host.url("/.well-known/openid-configuration"), timeout=5)
    assert discovery.status_code == 200
    document = discovery.json()
    assert document["issuer"] == LOCAL_ISSUER
    assert document["jwks_uri"] == host.url("/.well-known/jwks.json")
    served = requests.get(document["jwks_uri"], timeout=5).json()
    assert served == json.loads(jwks_path(data_dir).read_text())
    (key,) = served["keys"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)

    minted = mint(data_dir, "--role", "Platform.Analyst", "--app", "my-app", "--ttl", "1h")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert minted.stdout == token + "\n"

    keys = JwksKeys(lambda: requests.get(document["jwks_uri"], timeout=5).json())
    principal = TokenValidator(RULES, keys).verify(token)
    assert (principal.kind, principal.id, principal.tenant) == ("app", "my-app", LOCAL_TENANT_ID)
    assert principal.roles == {"Platform.Analyst"}


def test_the_documents_are_anonymous_at_the_root_only(start_devhost: StartDevhost) -> None:
    host = start_devhost("http_basic", env={"DEVHOST_ENFORCE_AUTH": "true"})
    for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
        assert requests.get(host.url(path), timeout=5).status_code == 200
        assert requests.get(host.url("/v1" + path), timeout=5).status_code == 404
        assert requests.post(host.url(path), timeout=5).status_code == 405


def test_a_restarted_host_keeps_its_key_and_a_stranger_token_is_refused(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_devhost("http_basic", data_dir=data_dir)
    before = requests.get(first.url("/.well-known/jwks.json"), timeout=5).json()
    first.stop()
    second = start_devhost("http_basic", data_dir=data_dir)
    url = second.url("/.well-known/jwks.json")
    assert requests.get(url, timeout=5).json() == before
    stranger = mint(tmp_path / "elsewhere", "--role", "Platform.Admin").stdout.strip()
    keys = JwksKeys(lambda: requests.get(url, timeout=5).json())
    with pytest.raises(AuthenticationError, match="signing key is unknown"):
        TokenValidator(RULES, keys).verify(stranger)


def test_the_documents_win_over_an_app_without_a_route_prefix(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    """With `routePrefix: ""` the app's HTTP functions take every path; the host's own
    documents still answer, as Core Tools keeps its admin and runtime paths."""
    app = tmp_path / "app"
    shutil.copytree(FIXTURE_APPS / "http_basic", app)
    host_json = json.loads((app / "host.json").read_text())
    host_json["extensions"]["http"]["routePrefix"] = ""
    (app / "host.json").write_text(json.dumps(host_json))
    host = start_devhost(app)
    assert requests.get(host.url("/items/42"), timeout=5).json()["id"] == 42
    assert requests.get(host.url("/.well-known/jwks.json"), timeout=5).json()["keys"]


def test_the_app_finds_the_jwks_at_its_data_dir_when_it_loads(
    start_devhost: StartDevhost, tmp_path: Path
) -> None:
    """The app reads `jwks_path(DEVHOST_DATA_DIR)` at import, as the platform does in local
    mode: the file is there before the app loads, and it is what the host serves."""
    host = start_devhost("issuer_reader", data_dir=tmp_path / "data")
    at_import = requests.get(host.url("/api/jwks-at-import"), timeout=5).json()
    assert at_import == requests.get(host.url("/.well-known/jwks.json"), timeout=5).json()
