"""The caller by mode: Entra tokens, App Service Authentication's header (only in that mode),
and the settings that choose between them, failing closed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shared.config import AuthMode, AuthSettings, SettingsError, load_settings
from shared.identity.authenticator import Authenticator, bearer_token, client_address, is_loopback
from shared.identity.easyauth import principal_from_header
from shared.identity.principal import AuthenticationError, Principal
from shared.identity.roles import Role, effective
from tests.tokens import AUDIENCE, TENANT, Issuer

pytestmark = pytest.mark.unit

OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
TID = "http://schemas.microsoft.com/identity/claims/tenantid"


def _entra(issuer: Issuer) -> Authenticator:
    return Authenticator(
        AuthSettings(
            AuthMode.ENTRA, tenant_id=TENANT, audiences=(AUDIENCE,), jwks_url=str(issuer.jwks_path)
        )
    )


def _principal_header(claims: list[dict[str, str]], **fields: object) -> str:
    body = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles", **fields}
    return base64.b64encode(json.dumps(body).encode()).decode()


def test_entra_mode_takes_a_bearer_token_and_nothing_else(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    authenticator = _entra(issuer)
    token = issuer.token(roles=["Platform.Operator"])
    principal = authenticator.authenticate({"authorization": f"Bearer {token}"})
    assert principal.id == "user-oid-1" and principal.holds(Role.READER.value)
    forged = _principal_header(
        [{"typ": OID, "val": "admin"}, {"typ": "roles", "val": "Platform.Admin"}]
    )
    for headers in (
        {},
        {"x-ms-client-principal": forged},  # anyone can send it: ignored outside easyauth
        {"x-ms-client-principal": forged, "x-forwarded-for": "127.0.0.1"},
        {"authorization": f"Basic {token}"},
        {"authorization": "Bearer"},
        {"authorization": f"Bearer {token} extra"},
    ):
        with pytest.raises(AuthenticationError):
            authenticator.authenticate(headers)


def test_easyauth_mode_reads_the_principal_header(tmp_path: Path) -> None:
    authenticator = Authenticator(AuthSettings(AuthMode.EASYAUTH, tenant_id=TENANT))
    header = _principal_header(
        [
            {"typ": OID, "val": "oid-7"},
            {"typ": TID, "val": TENANT},
            {"typ": "roles", "val": "Platform.Analyst"},
            {"typ": "name", "val": "Someone"},
        ]
    )
    principal = authenticator.authenticate({"x-ms-client-principal": header})
    assert (principal.kind, principal.id, principal.roles) == (
        "user",
        "oid-7",
        {"Platform.Analyst"},
    )
    app = principal_from_header(
        _principal_header(
            [
                {"typ": "idtyp", "val": "app"},
                {"typ": "azp", "val": "client-1"},
                {"typ": TID, "val": TENANT},
            ]
        ),
        TENANT,
    )
    assert (app.kind, app.id) == ("app", "client-1")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "not base64!",
        base64.b64encode(b"\xff\xfe").decode(),
        base64.b64encode(b"[1, 2]").decode(),
        base64.b64encode(b'{"claims": "no"}').decode(),
        _principal_header([{"typ": TID, "val": TENANT}]),  # no oid
        _principal_header([{"typ": OID, "val": "x"}, {"typ": TID, "val": "another"}]),
        "A" * 70_000,
    ],
)
def test_bad_principal_headers_are_refused(header: str | None) -> None:
    authenticator = Authenticator(AuthSettings(AuthMode.EASYAUTH, tenant_id=TENANT))
    with pytest.raises(AuthenticationError):
        authenticator.authenticate({} if header is None else {"x-ms-client-principal": header})


def test_the_client_is_the_last_forwarded_address() -> None:
    assert client_address({"x-forwarded-for": "10.0.0.1, 127.0.0.1:5000"}) == "127.0.0.1"
    assert client_address({"x-forwarded-for": "127.0.0.1, 203.0.113.9"}) == "203.0.113.9"
    assert client_address({"x-forwarded-for": "[::1]:80"}) == "::1"
    assert client_address({}) == ""
    assert is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("") and not is_loopback("localhost") and not is_loopback("10.0.0.1")


def test_bearer_headers_are_read_strictly() -> None:
    assert bearer_token(None) is None and bearer_token("  ") is None
    assert bearer_token("bearer abc") == "abc"
    for bad in ("Bearer", "Basic abc", "Bearer a b", "Token abc"):
        with pytest.raises(AuthenticationError):
            bearer_token(bad)


def test_roles_imply_reader_and_admin_holds_every_platform_role() -> None:
    assert effective(["Platform.Operator"]) == {"Platform.Operator", "Platform.Reader"}
    assert effective(["Platform.Writer"]) == {"Platform.Writer"}  # devices only write
    admin = effective(["Platform.Admin"])
    assert {"Platform.Operator", "Platform.Steward", "Platform.Reader"} <= admin
    assert "PII.Read" not in admin  # personal data only when granted explicitly
    assert effective(["Unknown", "platform.reader"]) == frozenset()


ENTRA = {
    "PLATFORM_ENVIRONMENT": "dev",
    "PLATFORM_AUTH": "entra",
    "ENTRA_TENANT_ID": TENANT,
    "ENTRA_AUDIENCE": f"{AUDIENCE}, 11111111-2222-3333-4444-555555555555",
}


def test_auth_settings_by_environment(tmp_path: Path) -> None:
    local = load_settings({"PLATFORM_DATA_DIR": str(tmp_path)}).auth
    assert local.mode is AuthMode.LOCAL and Role.ADMIN.value in local.local_developer_roles
    assert local.local_jwks_path == tmp_path / "identity" / "jwks.json"
    entra = load_settings(ENTRA).auth
    assert entra.audiences == (AUDIENCE, "11111111-2222-3333-4444-555555555555")
    assert entra.jwks_url == f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    roles = load_settings({"LOCAL_DEVELOPER_ROLES": "Platform.Reader, Platform.Writer"}).auth
    assert roles.local_developer_roles == ("Platform.Reader", "Platform.Writer")


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"PLATFORM_ENVIRONMENT": "dev"}, "PLATFORM_AUTH"),
        ({"PLATFORM_ENVIRONMENT": "test", "PLATFORM_AUTH": "local"}, "PLATFORM_AUTH"),
        ({"PLATFORM_AUTH": "kerberos"}, "PLATFORM_AUTH"),
        ({**ENTRA, "ENTRA_TENANT_ID": "contoso.onmicrosoft.com"}, "ENTRA_TENANT_ID"),
        ({**ENTRA, "ENTRA_AUDIENCE": " , "}, "ENTRA_AUDIENCE"),
        ({k: v for k, v in ENTRA.items() if k != "ENTRA_AUDIENCE"}, "ENTRA_AUDIENCE"),
        ({**ENTRA, "ENTRA_JWKS_URL": "http://keys.example/"}, "ENTRA_JWKS_URL"),
        ({**ENTRA, "ENTRA_JWKS_URL": "file:///etc/keys.json"}, "ENTRA_JWKS_URL"),
        ({"LOCAL_DEVELOPER_ROLES": "Platform.Root"}, "LOCAL_DEVELOPER_ROLES"),
        ({"LOCAL_DEVELOPER_ROLES": "Platform.Reader,,"}, "LOCAL_DEVELOPER_ROLES"),
    ],
)
def test_bad_auth_settings_are_refused_naming_them(environ: dict[str, str], setting: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(environ)
    assert refused.value.setting == setting


class Keys:
    """Application keys as the AI gateway's store will resolve them (issue 15)."""

    def __init__(self) -> None:
        self.known = {
            "sk-app-1": Principal("app", "app-1", TENANT, frozenset({"Platform.Analyst"})),
            "sk-user": Principal("user", "oid", TENANT, frozenset({"Platform.Admin"})),
        }
        self.asked: list[str] = []

    def resolve(self, key: str) -> Principal | None:
        self.asked.append(key)
        return self.known.get(key)


def test_application_keys_resolve_to_apps_through_the_resolver(tmp_path: Path) -> None:
    issuer = Issuer(tmp_path)
    settings = AuthSettings(
        AuthMode.ENTRA, tenant_id=TENANT, audiences=(AUDIENCE,), jwks_url=str(issuer.jwks_path)
    )
    keys = Keys()
    authenticator = Authenticator(settings, keys=keys)
    for headers in ({"api-key": "sk-app-1"}, {"authorization": "Bearer sk-app-1"}):
        principal = authenticator.authenticate(headers)
        assert (principal.kind, principal.id) == ("app", "app-1")
        assert principal.holds(Role.ANALYST.value) and not principal.holds(Role.ADMIN.value)
    token = issuer.token(roles=["Platform.Reader"])  # a JWT is still a token, not a key
    assert authenticator.authenticate({"authorization": f"Bearer {token}"}).kind == "user"
    for bad in ("sk-unknown", "sk-user", "k" * 300, "clé-non-ascii"):
        with pytest.raises(AuthenticationError):
            authenticator.authenticate({"api-key": bad})
    assert "k" * 300 not in keys.asked  # refused before the store is asked
    without = _entra(issuer)  # no resolver: no key is an identity
    for headers in ({"api-key": "sk-app-1"}, {"authorization": "Bearer sk-app-1"}):
        with pytest.raises(AuthenticationError):
            without.authenticate(headers)
