"""Who is calling, by `PLATFORM_AUTH` mode, failing closed.

- `entra`: `Authorization: Bearer <JWT>` validated by the app (`shared.identity.tokens`).
- `easyauth`: App Service Authentication's `X-MS-CLIENT-PRINCIPAL`; read in this mode only.
- `local`: tokens of the devhost's issuer (its JWKS file in the host's data dir), and a loopback
  caller without a token is the local developer with `LOCAL_DEVELOPER_ROLES`.

Application keys (the AI gateway's, issue 15) resolve to an identity of kind `app` through a
`KeyResolver` given to the authenticator: a key comes in the `api-key` header, or as a bearer
credential that is not a JWT (as OpenAI clients send theirs). Without a resolver no key is an
identity, and a bearer that is not a JWT is an invalid token.

The client address is the last entry of `X-Forwarded-For`, which the front end (Azure's, or
the devhost, which sets it from the socket) appends; a caller cannot make itself loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Protocol

from embedded.identity.local_issuer import (
    LOCAL_AUDIENCE,
    LOCAL_DEVELOPER,
    LOCAL_ISSUER,
    LOCAL_TENANT_ID,
)
from shared.config import AuthMode, AuthSettings
from shared.identity.easyauth import HEADER as PRINCIPAL_HEADER
from shared.identity.easyauth import principal_from_header
from shared.identity.principal import AuthenticationError, Principal
from shared.identity.tokens import JwksKeys, TokenRules, TokenValidator


class KeyResolver(Protocol):
    """Application keys: the identity (kind `app`) a key stands for, None for no such key."""

    def resolve(self, key: str) -> Principal | None: ...


KEY_HEADER = "api-key"


class Authenticator:
    """One per process: the validator caches keys and verified tokens."""

    def __init__(
        self,
        settings: AuthSettings,
        validator: TokenValidator | None = None,
        keys: KeyResolver | None = None,
    ) -> None:
        self.settings = settings
        self._validator = validator or _validator(settings)
        self._developer = _developer(settings) if settings.mode is AuthMode.LOCAL else None
        self._keys = keys

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller; AuthenticationError with a short reason when there is none."""
        if self._keys is not None:
            key = _application_key(headers)
            if key is not None:
                return self._application(key)
        if self.settings.mode is AuthMode.EASYAUTH:
            return principal_from_header(headers.get(PRINCIPAL_HEADER), self.settings.tenant_id)
        token = bearer_token(headers.get("authorization"))
        if token is not None:
            assert self._validator is not None
            return self._validator.verify(token)
        if self._developer is not None and is_loopback(client_address(headers)):
            return self._developer
        raise AuthenticationError("a bearer token is required", "authn_token_missing")

    def _application(self, key: str) -> Principal:
        assert self._keys is not None
        if len(key) > MAX_KEY_LENGTH or not key.isascii():
            raise AuthenticationError("the key is malformed")
        principal = self._keys.resolve(key)
        if principal is None or principal.kind != "app":
            raise AuthenticationError("the key is not valid")
        return principal


MAX_KEY_LENGTH = 256


def _application_key(headers: Mapping[str, str]) -> str | None:
    """The application key a request presents, if any: `api-key`, or a bearer that is not a
    JWT (three dot-separated parts)."""
    key = headers.get(KEY_HEADER)
    if key is not None and key.strip():
        return key.strip()
    token = bearer_token(headers.get("authorization"))
    if token is not None and token.count(".") != 2:
        return token
    return None


def _developer(settings: AuthSettings) -> Principal:
    """The loopback caller without a token, under `make run`."""
    roles = frozenset(settings.local_developer_roles)
    return Principal("local", LOCAL_DEVELOPER, LOCAL_TENANT_ID, roles)


def _validator(settings: AuthSettings) -> TokenValidator | None:
    if settings.mode is AuthMode.ENTRA:
        assert settings.tenant_id and settings.jwks_url
        rules = TokenRules.entra(settings.tenant_id, settings.audiences)
        return TokenValidator(rules, JwksKeys.from_url(settings.jwks_url))
    if settings.mode is AuthMode.LOCAL:
        assert settings.local_jwks_path is not None
        rules = TokenRules(LOCAL_TENANT_ID, (LOCAL_AUDIENCE,), (LOCAL_ISSUER,))
        return TokenValidator(rules, JwksKeys.from_url(str(settings.local_jwks_path)))
    return None


def bearer_token(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None without one. Another
    scheme, or a malformed header, is an AuthenticationError (never ignored)."""
    if value is None or not value.strip():
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    return token


def client_address(headers: Mapping[str, str]) -> str:
    """The client as the front end saw it: the last `X-Forwarded-For` entry, without port."""
    forwarded = headers.get("x-forwarded-for", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    if last.startswith("["):  # [::1]:port
        return last[1:].split("]", 1)[0]
    if last.count(":") == 1:  # ipv4:port
        return last.split(":", 1)[0]
    return last


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
