"""Entra ID tokens validated by the app: every bad token is refused with a short reason."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest

from shared.identity.principal import AuthenticationError
from shared.identity.tokens import JwksKeys, TokenRules, TokenValidator
from tests.tokens import AUDIENCE, CLIENT_ID, ISSUER_V1, TENANT, Issuer, unsigned

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path / "keys")


@pytest.fixture
def keys(issuer: Issuer) -> JwksKeys:
    return JwksKeys.from_url(issuer.jwks_url, clock=Clock())


@pytest.fixture
def validator(keys: JwksKeys) -> TokenValidator:
    return TokenValidator(TokenRules.entra(TENANT, [AUDIENCE, CLIENT_ID]), keys)


def test_a_user_token_gives_its_oid_roles_and_scopes(
    issuer: Issuer, validator: TokenValidator
) -> None:
    principal = validator.verify(
        issuer.token(roles=["Platform.Operator", 7], scp="user_impersonation read")
    )
    assert (principal.kind, principal.id, principal.tenant) == ("user", "user-oid-1", TENANT)
    assert principal.roles == {"Platform.Operator"}
    assert principal.scopes == {"user_impersonation", "read"}


def test_an_application_token_gives_its_client_id(
    issuer: Issuer, validator: TokenValidator
) -> None:
    app = validator.verify(issuer.token(idtyp="app", azp="client-9", oid="sp-oid"))
    assert (app.kind, app.id) == ("app", "client-9")
    v1 = validator.verify(issuer.token(idtyp="app", appid="client-8", iss=ISSUER_V1, aud=CLIENT_ID))
    assert (v1.kind, v1.id) == ("app", "client-8")


def _forged_hs256(issuer: Issuer) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    body = {
        "aud": AUDIENCE,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "tid": TENANT,
        "oid": "x",
        "exp": int(time.time()) + 60,
        "nbf": 0,
    }

    def part(value: object) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    import hashlib
    import hmac

    signing_input = part(header) + b"." + part(body)
    signature = hmac.new(issuer.public_pem(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def _tampered(token: str) -> str:
    header, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["roles"] = ["Platform.Admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda i, o: unsigned({"aud": AUDIENCE, "tid": TENANT, "oid": "x"}), "RS256"),
        (lambda i, o: _forged_hs256(i), "RS256"),
        (lambda i, o: o.token(), "signing key is unknown"),
        (lambda i, o: o.token(headers={"jku": "https://evil/keys"}), "own key"),
        (lambda i, o: i.token(headers={"jwk": o.jwk()}), "own key"),
        (lambda i, o: i.token(headers={"x5u": "https://evil/cert"}), "own key"),
        (lambda i, o: i.token(aud="api://another"), "audience"),
        (lambda i, o: i.token(iss="https://evil.example/v2.0"), "issuer"),
        (lambda i, o: i.token(tid="another-tenant"), "tenant"),
        (lambda i, o: i.token(exp=int(time.time()) - 120), "expired"),
        (lambda i, o: i.token(nbf=int(time.time()) + 120), "not valid yet"),
        (lambda i, o: i.token(exp=None), "no exp"),
        (lambda i, o: i.token(nbf=None), "no nbf"),
        (lambda i, o: i.token(exp="tomorrow"), "exp is not a time|signature or claims"),
        (lambda i, o: i.token(exp=10**30), "exp is not a time|signature or claims"),
        (lambda i, o: i.token(oid=None), "no user"),
        (lambda i, o: i.token(idtyp="app", oid=None), "no client id"),
        (lambda i, o: _tampered(i.token()), "signature"),
        (lambda i, o: i.token()[:-20], "malformed|signature"),
        (lambda i, o: i.token().split(".")[0], "malformed"),
        (lambda i, o: "\xff\xfe not a token", "malformed"),
        (lambda i, o: "a.b.c", "malformed"),
        (lambda i, o: "", "malformed"),
        (lambda i, o: "x" * 20_000, "malformed"),
    ],
)
def test_bad_tokens_are_refused_with_a_short_reason(
    issuer: Issuer, validator: TokenValidator, tmp_path: Path, make, reason: str
) -> None:
    other = Issuer(tmp_path / "other", kid="key-2")
    with pytest.raises(AuthenticationError, match=reason) as refused:
        validator.verify(make(issuer, other))
    assert "key-" not in refused.value.reason  # no key ids for an attacker


def test_leeway_is_60_seconds_at_most(issuer: Issuer, validator: TokenValidator) -> None:
    validator.verify(issuer.token(exp=int(time.time()) - 30))
    with pytest.raises(ValueError, match="at most 60"):
        rules = TokenRules(TENANT, (AUDIENCE,), (ISSUER_V1,), leeway_s=300)
        TokenValidator(rules, JwksKeys.from_url("x"))


def test_unknown_kids_fetch_the_keys_at_most_once_a_minute(issuer: Issuer, tmp_path: Path) -> None:
    clock = Clock()
    keys = JwksKeys.from_url(issuer.jwks_url, clock=clock)
    validator = TokenValidator(TokenRules.entra(TENANT, [AUDIENCE]), keys)
    validator.verify(issuer.token())
    assert keys.fetches == 1
    clock.now += 61
    strangers = [Issuer(tmp_path / f"s{n}", kid=f"stranger-{n}") for n in range(3)]
    for _ in range(50):
        for stranger in strangers:
            with pytest.raises(AuthenticationError):
                validator.verify(stranger.token(jti=str(time.monotonic())))
    assert keys.fetches == 2  # one refresh for the whole flood
    rotated = Issuer(tmp_path / "rotated", kid="key-2")
    issuer.publish(rotated)  # the tenant rolls a new key over
    with pytest.raises(AuthenticationError):
        validator.verify(rotated.token())  # within the minute: not fetched again
    clock.now += 61
    assert validator.verify(rotated.token()).id == "user-oid-1"
    assert keys.fetches == 3


def test_a_verified_token_is_answered_from_the_cache_until_it_expires(
    issuer: Issuer, keys: JwksKeys
) -> None:
    clock = Clock()
    clock.now = time.time()
    validator = TokenValidator(TokenRules.entra(TENANT, [AUDIENCE]), keys, clock=clock)
    token = issuer.token(exp=int(clock.now) + 100)
    first = validator.verify(token)
    assert validator.verify(token) is first
    clock.now += 161  # past exp and the leeway
    with pytest.raises(AuthenticationError, match="expired"):
        validator.verify(token)


def test_ten_thousand_roles_are_read_in_bounded_time(
    issuer: Issuer, validator: TokenValidator
) -> None:
    roles = [f"Role.{n}" for n in range(10_000)]
    principal = validator.verify(issuer.token(roles=roles))
    assert len(principal.roles) == 10_000


def test_pyjwt_refuses_hmac_with_a_public_key_on_its_own_too(issuer: Issuer) -> None:
    """Belt and braces: even past our header check, PyJWT would not take the forgery."""
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(_forged_hs256(issuer), issuer.public_pem(), algorithms=["RS256"])
