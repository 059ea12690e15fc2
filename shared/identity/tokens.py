"""Entra ID access tokens, validated by the app itself (PyJWT), failing closed.

- RS256 only: `none`, HMAC and every other algorithm are refused before any key is looked at,
  and so is a header that names its own key (`jku`, `jwk`, `x5u`, `x5c`).
- Keys come from the tenant's JWKS (`ENTRA_JWKS_URL`), cached; an unknown `kid` refreshes them
  at most once a minute, however many such tokens arrive.
- `exp` and `nbf` are required (at most 60 s of leeway), `aud` must be one of the configured
  audiences, `tid` the tenant, `iss` the tenant's v1 or v2 issuer.
- A token already verified is answered from a bounded cache keyed by the whole token until it
  expires, since clients reuse one token for up to an hour.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from shared.identity.principal import AuthenticationError, Principal

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 512 * 1024  # far past any host's header limit; bounds the work here
MAX_LEEWAY_S = 60
KEY_REFRESH_INTERVAL_S = 60.0
_FORBIDDEN_HEADERS = ("jku", "jwk", "x5u", "x5c")
_ALGORITHMS = ["RS256"]
_OPTIONS: Any = {
    "require": ["exp", "nbf", "iss", "aud"],
    "verify_exp": False,  # checked after, on the validator's clock, with its leeway
    "verify_nbf": False,
    "verify_iat": False,
}


@dataclass(frozen=True)
class TokenRules:
    """What a valid token says: its tenant, audiences and issuers."""

    tenant_id: str
    audiences: tuple[str, ...]
    issuers: tuple[str, ...]
    leeway_s: int = MAX_LEEWAY_S

    @classmethod
    def entra(cls, tenant_id: str, audiences: Sequence[str]) -> TokenRules:
        """The v1 and v2 issuers of an Entra ID tenant."""
        return cls(
            tenant_id,
            tuple(audiences),
            (
                f"https://sts.windows.net/{tenant_id}/",
                f"https://login.microsoftonline.com/{tenant_id}/v2.0",
            ),
        )


class KeySource(Protocol):
    def key(self, kid: str) -> PyJWK | None:
        """The signing key with this id, or None."""
        ...


class JwksKeys:
    """The signing keys of a JWKS, fetched on first use and again on an unknown `kid`, at
    most once per interval. `fetch` answers the JWKS document (`https://` through PyJWKClient,
    or the devhost's local issuer's file)."""

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        *,
        interval_s: float = KEY_REFRESH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self.fetches = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> JwksKeys:
        """Keys from an https:// JWKS URL, or a local file path (`file://` or a plain path)."""
        if url.startswith("https://") or url.startswith("http://"):
            client = PyJWKClient(url, cache_jwk_set=False, cache_keys=False, timeout=10)
            return cls(lambda: dict(client.fetch_data()), **options)
        path = Path(url.removeprefix("file://"))
        return cls(lambda: dict(json.loads(path.read_text(encoding="utf-8"))), **options)

    def key(self, kid: str) -> PyJWK | None:
        found = self._keys.get(kid)
        if found is not None:
            return found
        with self._lock:
            found = self._keys.get(kid)
            now = self._clock()
            if found is None and (
                self._fetched_at is None or now - self._fetched_at >= self._interval_s
            ):
                self._fetched_at = now
                self.fetches += 1
                try:
                    self._keys = _signing_keys(PyJWKSet.from_dict(dict(self._fetch())))
                except (OSError, ValueError, jwt.PyJWTError) as error:
                    log.warning("the signing keys could not be fetched: %s", type(error).__name__)
                found = self._keys.get(kid)
        return found


def _signing_keys(keys: PyJWKSet) -> dict[str, PyJWK]:
    return {
        key.key_id: key
        for key in keys.keys
        if key.key_id and key.key_type == "RSA" and key.public_key_use in (None, "sig")
    }


class TokenValidator:
    """Bearer tokens to principals, or AuthenticationError with a short, safe reason."""

    def __init__(
        self,
        rules: TokenRules,
        keys: KeySource,
        *,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
    ) -> None:
        if not 0 <= rules.leeway_s <= MAX_LEEWAY_S:
            raise ValueError(f"the leeway is at most {MAX_LEEWAY_S} s")
        self.rules = rules
        self._keys = keys
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._audiences = list(rules.audiences)
        self._issuers = list(rules.issuers)

    def verify(self, token: str) -> Principal:
        if not token or len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise AuthenticationError("the token is malformed")
        now = self._clock()
        with self._lock:
            cached = self._cache.get(token)
            if cached is not None:
                principal, expires = cached
                if now < expires:
                    self._cache.move_to_end(token)
                    return principal
                del self._cache[token]
        principal, expires = self._verify(token, now)
        with self._lock:
            self._cache[token] = (principal, expires)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str, now: float) -> tuple[Principal, float]:
        header = _header(token)
        if header.get("alg") != "RS256":
            raise AuthenticationError("the token must be signed with RS256")
        if any(name in header for name in _FORBIDDEN_HEADERS):
            raise AuthenticationError("the token must not name its own key")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 256:
            raise AuthenticationError("the token names no signing key")
        key = self._keys.key(kid)
        if key is None:
            raise AuthenticationError("the token's signing key is unknown")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=_ALGORITHMS,
                audience=self._audiences,
                issuer=self._issuers,
                options=_OPTIONS,
            )
        except jwt.InvalidAudienceError as error:
            raise AuthenticationError("the token is for another audience") from error
        except jwt.InvalidIssuerError as error:
            raise AuthenticationError("the token is from another issuer") from error
        except jwt.MissingRequiredClaimError as error:
            raise AuthenticationError(f"the token has no {error.claim} claim") from error
        except (jwt.InvalidTokenError, ValueError, TypeError) as error:
            raise AuthenticationError("the token's signature or claims are invalid") from error
        if claims.get("tid") != self.rules.tenant_id:
            raise AuthenticationError("the token is from another tenant")
        expires, not_before = _seconds(claims, "exp"), _seconds(claims, "nbf")
        if now > expires + self.rules.leeway_s:
            raise AuthenticationError("the token has expired")
        if now < not_before - self.rules.leeway_s:
            raise AuthenticationError("the token is not valid yet")
        return principal_from_claims(claims), expires + self.rules.leeway_s


def _header(token: str) -> dict[str, Any]:
    """The token's JOSE header, read once before any key is chosen (PyJWT's own
    `get_unverified_header` decodes the whole token for it)."""
    encoded, dot, _ = token.partition(".")
    if not dot or not encoded:
        raise AuthenticationError("the token is malformed")
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, TypeError, UnicodeError) as error:
        raise AuthenticationError("the token is malformed") from error
    if not isinstance(header, dict):
        raise AuthenticationError("the token is malformed")
    return header


def _seconds(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not -(2**53) < value < 2**53
    ):
        raise AuthenticationError(f"the token's {name} is not a time")
    return float(value)


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """A user (`oid`) or an application (`idtyp: app`, `azp` or `appid`) with its roles and
    scopes; AuthenticationError when the claims name neither."""
    tenant = str(claims.get("tid", ""))
    roles = _strings(claims.get("roles"))
    scopes = frozenset(str(claims.get("scp", "")).split()) if claims.get("scp") else frozenset()
    if claims.get("idtyp") == "app":
        app_id = claims.get("azp") or claims.get("appid")
        if not isinstance(app_id, str) or not app_id:
            raise AuthenticationError("the application token names no client id")
        return Principal("app", app_id, tenant, roles, scopes)
    oid = claims.get("oid")
    if not isinstance(oid, str) or not oid:
        raise AuthenticationError("the token names no user (oid)")
    return Principal("user", oid, tenant, roles, scopes)


def _strings(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(item for item in value if isinstance(item, str))
