"""Gateway keys: their format, and the only form in which they are kept (a salted hash).

A key is `pgw-<app>-<secret>`: `<app>` is the 16 hex digits of the app's id (`app-<app>`), so
authenticating a key is one point read of its app's document, never a scan; `<secret>` is 32
random bytes (`secrets.token_urlsafe`, 43 characters). The app part is an identifier, not a
secret: it is in the usage ledger too.

The app's document keeps HMAC-SHA256 of the whole key under a random per-key salt, never the
key. A fast keyed hash is the right tool here: slow password hashes (scrypt, Argon2) exist to
make guessing a low-entropy password expensive, but a 256-bit random secret cannot be guessed
at any speed, and a slow hash on every request would cost each request milliseconds of CPU and
hand a flood of bad keys a cheap way to exhaust the host. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

KEY_PREFIX = "pgw-"
APP_ID_PREFIX = "app-"
HASH_SCHEME = "hmac-sha256"
_APP_HEX = 16
_SECRET_BYTES = 32
_KEY = re.compile(r"pgw-([0-9a-f]{16})-[A-Za-z0-9_-]{43}")
_APP_ID = re.compile(r"app-[0-9a-f]{16}")
_SALT_BYTES = 16


def new_app_id() -> str:
    """A fresh app id: `app-` and 16 random hex digits."""
    return APP_ID_PREFIX + secrets.token_hex(_APP_HEX // 2)


def new_key(app_id: str) -> str:
    """A fresh key for the app (its id from `new_app_id`)."""
    if not is_key_app_id(app_id):
        raise ValueError("keys are issued for ids from new_app_id only")
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return f"{KEY_PREFIX}{app_id.removeprefix(APP_ID_PREFIX)}-{secret}"


def is_key_app_id(app_id: str) -> bool:
    """Whether `app_id` is the id of an app that authenticates with a key."""
    return _APP_ID.fullmatch(app_id) is not None


def app_id_of(key: str) -> str | None:
    """The id of the app a key claims to be for; None when it is not a gateway key at all."""
    found = _KEY.fullmatch(key) if isinstance(key, str) else None
    return None if found is None else APP_ID_PREFIX + found.group(1)


@dataclass(frozen=True)
class KeyHash:
    """What is kept of a key: the salt and the HMAC, as hex."""

    salt: str
    digest: str

    @classmethod
    def of(cls, key: str) -> KeyHash:
        salt = secrets.token_bytes(_SALT_BYTES)
        return cls(salt.hex(), _digest(salt, key))

    def matches(self, key: str) -> bool:
        """Whether `key` is the key this hash was made of, in constant time."""
        try:
            salt = bytes.fromhex(self.salt)
        except ValueError:
            return False
        return hmac.compare_digest(_digest(salt, key), self.digest)

    def to_json(self) -> dict[str, str]:
        return {"scheme": HASH_SCHEME, "salt": self.salt, "digest": self.digest}

    @classmethod
    def from_json(cls, value: Any) -> KeyHash | None:
        """The hash kept in a document; None for none (a revoked key) or an unknown scheme."""
        if not isinstance(value, dict) or value.get("scheme") != HASH_SCHEME:
            return None
        salt, digest = value.get("salt"), value.get("digest")
        if not isinstance(salt, str) or not isinstance(digest, str):
            return None
        return cls(salt, digest)


def _digest(salt: bytes, key: str) -> str:
    return hmac.new(salt, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
