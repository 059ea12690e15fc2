"""The devhost's local token issuer: Entra ID-shaped access tokens signed with a key of its own.

- The key is `<data dir>/identity/issuer-key.pem` (RSA 2048, mode 600, folder 700), created on
  first use and then kept; its `kid` is its RFC 7638 JWK thumbprint.
- Its public half is `<data dir>/identity/jwks.json`, which the platform reads in local mode and
  the devhost serves at `/.well-known/jwks.json`.
- Tokens look like Entra ID v2.0 access tokens of the local tenant (`LOCAL_TENANT_ID`): `aud`,
  `iss`, `tid`, `iat`, `nbf`, `exp`, `ver`, `roles`, and `scp` for delegated scopes. An
  application's token has `idtyp: app`, `azp` and `appid`; a user's has only `oid` and `sub`
  (no names: no personal data). Object ids are stable uuid5s of the app or user name.

There is no authorization or token endpoint: `python -m devhost token` mints from the command
line, since the issuer trusts whoever can read the data dir.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from embedded.identity.keyfile import (
    load_or_create_private_key,
    private_directory,
    write_atomically,
)

LOCAL_TENANT_ID = "10ca1de7-de70-4057-9000-000000000001"
"""The local tenant: every token the devhost mints names it in `tid` and in its issuer."""
LOCAL_ISSUER = f"https://devhost.localhost/{LOCAL_TENANT_ID}/v2.0"
"""A v2-style issuer of the local tenant; an identifier only, it need not resolve."""
LOCAL_AUDIENCE = "api://platform"
LOCAL_DEVELOPER = "local-developer"
ALGORITHM = "RS256"
MIN_TTL_S = 60
MAX_TTL_S = 24 * 3600
MAX_NAME_LENGTH = 256
OPENID_CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"
KEY_FILE = "issuer-key.pem"
JWKS_FILE = "jwks.json"
CLAIMS = tuple("aud iss tid iat nbf exp ver oid sub roles scp idtyp azp appid".split())
_SUBJECTS = uuid.uuid5(uuid.NAMESPACE_URL, LOCAL_ISSUER)  # object ids: per issuer, stable


class TokenRequestError(ValueError):
    """A token was asked for with a bad lifetime, role, scope, audience or name."""


def issuer_dir(data_dir: str | os.PathLike[str]) -> Path:
    """`<data dir>/identity`: the issuer's key and JWKS."""
    return Path(data_dir) / "identity"


def jwks_path(data_dir: str | os.PathLike[str]) -> Path:
    """`<data dir>/identity/jwks.json`: the issuer's public keys."""
    return issuer_dir(data_dir) / JWKS_FILE


def check_ttl(ttl_s: int) -> int:
    """A token lifetime in whole seconds, from 60 s to 24 h."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int):
        raise TokenRequestError(f"the lifetime must be a whole number of seconds, not {ttl_s!r}")
    if not MIN_TTL_S <= ttl_s <= MAX_TTL_S:
        raise TokenRequestError(
            f"the lifetime must be from {MIN_TTL_S} s to 24 h ({MAX_TTL_S} s), not {ttl_s} s"
        )
    return ttl_s


def check_word(what: str, value: object) -> str:
    """A role, scope or audience: a non-empty string of printable characters, no whitespace."""
    if not isinstance(value, str) or not value:
        raise TokenRequestError(f"a {what} must be a non-empty string, not {value!r}")
    if not value.isprintable() or any(character.isspace() for character in value):
        raise TokenRequestError(
            f"a {what} must not contain whitespace or control characters: {value!r}"
        )
    if len(value) > MAX_NAME_LENGTH:
        raise TokenRequestError(f"a {what} must be at most {MAX_NAME_LENGTH} characters long")
    return value


def check_name(what: str, value: object) -> str:
    """An app or user name: up to 256 printable characters, not blank."""
    if not isinstance(value, str) or not value.strip():
        raise TokenRequestError(f"the {what} name must be a non-empty string, not {value!r}")
    if not value.isprintable() or len(value) > MAX_NAME_LENGTH:
        raise TokenRequestError(
            f"the {what} name must be at most {MAX_NAME_LENGTH} printable characters: {value!r}"
        )
    return value


def _words(what: str, values: Iterable[str]) -> list[str]:
    if isinstance(values, str):
        raise TokenRequestError(f"give the {what}s as a list, not the single string {values!r}")
    unique: dict[str, None] = {}
    for value in values:
        unique[check_word(what, value)] = None
    return list(unique)


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _integer(value: int) -> str:
    return _base64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: base64url SHA-256 of the key's required members (`e`, `kty`, `n` for RSA),
    as JSON in lexicographic order without whitespace."""
    required = {"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return _base64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public key as a JWK for RS256 signatures, its thumbprint as `kid`."""
    numbers = key.public_numbers()
    jwk = {"kty": "RSA", "n": _integer(numbers.n), "e": _integer(numbers.e)}
    return {**jwk, "kid": jwk_thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


def subject_id(kind: str, name: str) -> str:
    """The stable object id (`oid`, `sub`) of a local app or user."""
    return str(uuid.uuid5(_SUBJECTS, f"{kind}:{name}"))


class LocalIssuer:
    """Signs tokens with the data dir's key; `open` creates the key and JWKS file as needed."""

    def __init__(
        self, private_key: rsa.RSAPrivateKey, clock: Callable[[], float] = time.time
    ) -> None:
        self._private_key = private_key
        self._jwk = public_jwk(private_key.public_key())
        self._clock = clock

    @classmethod
    def open(
        cls, data_dir: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> LocalIssuer:
        """The issuer of this data dir: its key loaded, or created (600, folder 700), and its
        JWKS file written when missing or different. Raises IssuerKeyError for a key file
        that cannot be used, OSError when the folder cannot be written."""
        folder = issuer_dir(data_dir)
        private_directory(folder)
        issuer = cls(load_or_create_private_key(folder / KEY_FILE), clock)
        issuer._publish(folder / JWKS_FILE)
        return issuer

    @property
    def kid(self) -> str:
        return self._jwk["kid"]

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: the public key only."""
        return {"keys": [dict(self._jwk)]}

    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        """The OpenID discovery document served at `base_url`. It has no authorization or
        token endpoint: tokens come from `python -m devhost token`."""
        return {
            "issuer": LOCAL_ISSUER,
            "jwks_uri": base_url.rstrip("/") + JWKS_PATH,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "subject_types_supported": ["public"],
            "claims_supported": list(CLAIMS),
        }

    def mint(
        self,
        *,
        roles: Iterable[str],
        app: str | None = None,
        user: str = LOCAL_DEVELOPER,
        ttl_s: int,
        audience: str = LOCAL_AUDIENCE,
        scopes: Iterable[str] = (),
    ) -> str:
        """An RS256 access token for `app` (an application) or else `user`, with these app
        roles and, for a user, delegated scopes. TokenRequestError names the bad argument."""
        lifetime = check_ttl(ttl_s)
        role_list = _words("role", roles)
        if not role_list:
            raise TokenRequestError("a token needs at least one role (e.g. Platform.Reader)")
        scope_list = _words("scope", scopes)
        now = int(self._clock())
        claims: dict[str, Any] = {
            "aud": check_word("audience", audience),
            "iss": LOCAL_ISSUER,
            "tid": LOCAL_TENANT_ID,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "ver": "2.0",
            "roles": role_list,
        }
        if app is not None:
            if scope_list:
                raise TokenRequestError(
                    "an application's token carries roles, not scopes (scp is for a user)"
                )
            object_id = subject_id("app", check_name("app", app))
            claims.update(idtyp="app", azp=app, appid=app, oid=object_id, sub=object_id)
        else:
            object_id = subject_id("user", check_name("user", user))
            claims.update(oid=object_id, sub=object_id)
        if scope_list:
            claims["scp"] = " ".join(scope_list)
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def _publish(self, path: Path) -> None:
        try:
            if json.loads(path.read_text(encoding="utf-8")) == self.jwks():
                return
        except (OSError, ValueError):
            pass  # missing or unreadable: written below
        text = json.dumps(self.jwks(), indent=2, sort_keys=True) + "\n"
        write_atomically(path, text.encode("utf-8"))
