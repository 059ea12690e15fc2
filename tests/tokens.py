"""Signing keys, JWKS files and tokens for the identity tests: good ones and every bad kind."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

TENANT = "8d7c2f5e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
AUDIENCE = "api://platform"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
ISSUER_V1 = f"https://sts.windows.net/{TENANT}/"


class Issuer:
    """An RSA key pair that signs tokens and publishes its public half as a JWKS file."""

    def __init__(self, directory: Path, kid: str = "key-1") -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.jwks_path = directory / "jwks.json"
        self.publish()

    def jwk(self) -> dict[str, Any]:
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**key, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def publish(self, *extra: Issuer) -> None:
        keys = [self.jwk(), *(other.jwk() for other in extra)]
        self.jwks_path.write_text(json.dumps({"keys": keys}))

    @property
    def jwks_url(self) -> str:
        return self.jwks_path.as_uri()

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "aud": AUDIENCE,
            "iss": ISSUER,
            "tid": TENANT,
            "oid": "user-oid-1",
            "nbf": now - 10,
            "iat": now - 10,
            "exp": now + 3600,
            "roles": ["Platform.Reader"],
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(
            body, self.private, algorithm="RS256", headers={"kid": self.kid, **(headers or {})}
        )


def unsigned(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A token with `alg: none`."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header or {'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
