"""The devhost's local issuer: one private key per data dir, a public JWKS, and tokens that the
platform's own validator accepts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from embedded.identity import keyfile
from embedded.identity.keyfile import IssuerKeyError
from embedded.identity.local_issuer import (
    KEY_FILE,
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    LOCAL_TENANT_ID,
    LocalIssuer,
    TokenRequestError,
    issuer_dir,
    jwk_thumbprint,
    jwks_path,
    subject_id,
)
from shared.identity.principal import AuthenticationError
from shared.identity.tokens import JwksKeys, TokenRules, TokenValidator
from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def validator(data_dir: Path, **options: Any) -> TokenValidator:
    rules = TokenRules(LOCAL_TENANT_ID, (LOCAL_AUDIENCE,), (LOCAL_ISSUER,))
    return TokenValidator(rules, JwksKeys.from_url(str(jwks_path(data_dir))), **options)


def files(data_dir: Path) -> list[str]:
    return sorted(path.name for path in issuer_dir(data_dir).iterdir())


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


@pytest.fixture
def issuer(tmp_path: Path) -> LocalIssuer:
    return LocalIssuer.open(tmp_path)


def test_the_key_is_created_once_owner_only_and_reused(tmp_path: Path) -> None:
    first = LocalIssuer.open(tmp_path)
    key_path = issuer_dir(tmp_path) / KEY_FILE
    assert issuer_dir(tmp_path) == tmp_path / "identity"
    assert mode(key_path) == 0o600
    assert mode(issuer_dir(tmp_path)) == 0o700
    pem = key_path.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    again = LocalIssuer.open(tmp_path)
    assert again.kid == first.kid
    assert key_path.read_bytes() == pem
    assert files(tmp_path) == ["issuer-key.pem", "jwks.json"]  # no temporary files left


def test_an_opened_folder_and_key_are_closed_to_others(tmp_path: Path) -> None:
    LocalIssuer.open(tmp_path)
    key_path = issuer_dir(tmp_path) / KEY_FILE
    key_path.chmod(0o644)
    issuer_dir(tmp_path).chmod(0o755)
    LocalIssuer.open(tmp_path)
    assert mode(key_path) == 0o600
    assert mode(issuer_dir(tmp_path)) == 0o700


def test_the_loser_of_a_race_signs_with_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process publishes its key while this one generates its own: this one must
    drop its key and use the published one, never replace it."""
    winner = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    winner_pem = winner.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    generate = rsa.generate_private_key

    def generate_while_another_publishes(**options: Any) -> rsa.RSAPrivateKey:
        (issuer_dir(tmp_path) / KEY_FILE).write_bytes(winner_pem)
        return generate(**options)

    monkeypatch.setattr(keyfile.rsa, "generate_private_key", generate_while_another_publishes)
    loser = LocalIssuer.open(tmp_path)
    assert loser.kid == LocalIssuer(winner).kid
    assert (issuer_dir(tmp_path) / KEY_FILE).read_bytes() == winner_pem
    assert json.loads(jwks_path(tmp_path).read_text()) == LocalIssuer(winner).jwks()
    assert files(tmp_path) == ["issuer-key.pem", "jwks.json"]


def test_processes_opening_at_once_agree_on_one_key(tmp_path: Path) -> None:
    start_at = time.time() + 1.5  # all of them past their imports, then all at once
    script = (
        "import sys, time\n"
        "from embedded.identity.local_issuer import LocalIssuer\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "print(LocalIssuer.open(sys.argv[1]).kid)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(start_at)],
            stdout=subprocess.PIPE,
            env=environment,
            text=True,
        )
        for _ in range(4)
    ]
    kids = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    assert kids == {LocalIssuer.open(tmp_path).kid}
    assert files(tmp_path) == ["issuer-key.pem", "jwks.json"]


def test_the_jwks_holds_the_public_key_only_named_by_its_thumbprint(
    tmp_path: Path, issuer: LocalIssuer
) -> None:
    document = json.loads(jwks_path(tmp_path).read_text())
    assert document == issuer.jwks()
    (key,) = document["keys"]
    assert not set(PRIVATE_MEMBERS) & set(key)
    assert set(key) == {"kty", "n", "e", "kid", "use", "alg"}
    assert (key["kty"], key["e"], key["use"], key["alg"]) == ("RSA", "AQAB", "sig", "RS256")
    assert key["kid"] == jwk_thumbprint(key) == issuer.kid


def test_the_thumbprint_is_rfc_7638s() -> None:
    """The example of RFC 7638, section 3.1."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
        "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vM"
        "QFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_missing_or_changed_jwks_file_is_written_again(
    tmp_path: Path, issuer: LocalIssuer
) -> None:
    path = jwks_path(tmp_path)
    path.unlink()
    LocalIssuer.open(tmp_path)
    assert json.loads(path.read_text()) == issuer.jwks()
    path.write_text('{"keys": []}')
    LocalIssuer.open(tmp_path)
    assert json.loads(path.read_text()) == issuer.jwks()
    before = path.stat().st_ino
    LocalIssuer.open(tmp_path)
    assert path.stat().st_ino == before  # the same document is left as it is


def test_an_unusable_key_file_is_refused_naming_it(tmp_path: Path) -> None:
    folder = issuer_dir(tmp_path)
    folder.mkdir(mode=0o700)
    (folder / KEY_FILE).write_text("not a key")
    with pytest.raises(IssuerKeyError, match="issuer-key.pem is not an unencrypted PEM"):
        LocalIssuer.open(tmp_path)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (folder / KEY_FILE).write_bytes(
        small.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(IssuerKeyError, match="at least 2048 bits"):
        LocalIssuer.open(tmp_path)


def test_an_applications_token_verifies_as_that_application(
    tmp_path: Path, issuer: LocalIssuer
) -> None:
    token = issuer.mint(roles=["Platform.Analyst", "Platform.Reader"], app="my-app", ttl_s=3600)
    principal = validator(tmp_path).verify(token)
    assert (principal.kind, principal.id, principal.tenant) == ("app", "my-app", LOCAL_TENANT_ID)
    assert principal.roles == {"Platform.Analyst", "Platform.Reader"}
    assert principal.scopes == frozenset()
    body = claims(token)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": issuer.kid, "typ": "JWT"}
    assert body["idtyp"] == "app" and body["azp"] == body["appid"] == "my-app"
    assert body["oid"] == body["sub"] == subject_id("app", "my-app")
    assert (body["aud"], body["iss"], body["ver"]) == (LOCAL_AUDIENCE, LOCAL_ISSUER, "2.0")
    assert body["exp"] - body["iat"] == 3600 and body["nbf"] == body["iat"]
    assert "scp" not in body


def test_a_users_token_carries_a_stable_object_id_and_no_name(
    tmp_path: Path, issuer: LocalIssuer
) -> None:
    token = issuer.mint(roles=["Platform.Reader"], ttl_s=600, scopes=["user_impersonation", "x"])
    principal = validator(tmp_path).verify(token)
    assert principal.kind == "user"
    assert principal.id == subject_id("user", "local-developer")
    assert principal.scopes == {"user_impersonation", "x"}
    body = claims(token)
    assert body["scp"] == "user_impersonation x"
    assert body["oid"] == body["sub"] == principal.id
    assert not {"idtyp", "azp", "appid", "name", "preferred_username", "upn", "email"} & set(body)
    alice = claims(issuer.mint(roles=["Platform.Reader"], user="alice", ttl_s=60))
    assert alice["oid"] == subject_id("user", "alice") != principal.id
    assert (
        alice["oid"]
        == claims(LocalIssuer.open(tmp_path).mint(roles=["A"], user="alice", ttl_s=60))["oid"]
    )
    assert subject_id("app", "alice") != alice["oid"]


def test_the_token_expires_and_another_audience_is_refused(tmp_path: Path) -> None:
    now = [1_000_000.0]
    issuer = LocalIssuer.open(tmp_path, clock=lambda: now[0])
    token = issuer.mint(roles=["Platform.Reader"], ttl_s=60)
    assert validator(tmp_path, clock=lambda: now[0] + 60).verify(token).kind == "user"
    with pytest.raises(AuthenticationError, match="expired"):
        validator(tmp_path, clock=lambda: now[0] + 200).verify(token)
    other = issuer.mint(roles=["Platform.Reader"], ttl_s=60, audience="api://other")
    with pytest.raises(AuthenticationError, match="another audience"):
        validator(tmp_path, clock=lambda: now[0]).verify(other)


def test_a_key_from_another_data_dir_does_not_verify(tmp_path: Path) -> None:
    stranger = LocalIssuer.open(tmp_path / "other").mint(roles=["Platform.Admin"], ttl_s=60)
    LocalIssuer.open(tmp_path)
    with pytest.raises(AuthenticationError, match="signing key is unknown"):
        validator(tmp_path).verify(stranger)


@pytest.mark.parametrize("ttl_s", [0, 59, 86_401, -60, True, 3600.0, "3600"])
def test_a_lifetime_outside_a_minute_to_a_day_is_refused(issuer: LocalIssuer, ttl_s: Any) -> None:
    with pytest.raises(TokenRequestError, match="lifetime"):
        issuer.mint(roles=["Platform.Reader"], ttl_s=ttl_s)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"roles": []}, "at least one role"),
        ({"roles": [""]}, "non-empty string"),
        ({"roles": ["Platform Reader"]}, "whitespace"),
        ({"roles": ["Platform.Reader\n"]}, "whitespace"),
        ({"roles": ["a\x00b"]}, "control characters"),
        ({"roles": [42]}, "non-empty string"),
        ({"roles": "Platform.Reader"}, "as a list"),
        ({"roles": ["r" * 257]}, "at most 256"),
        ({"roles": ["R"], "scopes": ["a b"]}, "scope must not contain whitespace"),
        ({"roles": ["R"], "audience": ""}, "audience must be a non-empty"),
        ({"roles": ["R"], "app": ""}, "app name"),
        ({"roles": ["R"], "app": "   "}, "app name"),
        ({"roles": ["R"], "user": ""}, "user name"),
        ({"roles": ["R"], "user": "a\tb"}, "user name"),
        ({"roles": ["R"], "app": "my-app", "scopes": ["s"]}, "roles, not scopes"),
    ],
)
def test_bad_token_requests_are_refused_with_the_reason(
    issuer: LocalIssuer, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(TokenRequestError, match=message):
        issuer.mint(ttl_s=3600, **options)


def test_repeated_roles_are_listed_once(issuer: LocalIssuer) -> None:
    token = issuer.mint(roles=["B", "A", "B"], ttl_s=60)
    assert claims(token)["roles"] == ["B", "A"]


def test_the_discovery_document_points_at_the_served_jwks(issuer: LocalIssuer) -> None:
    document = issuer.openid_configuration("http://127.0.0.1:7071/")
    assert document["issuer"] == LOCAL_ISSUER
    assert document["jwks_uri"] == "http://127.0.0.1:7071/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "token_endpoint" not in document and "authorization_endpoint" not in document
