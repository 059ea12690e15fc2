"""Fixtures of the integration tier: Azurite for the ADLS Gen2 lake, and an Entra ID tenant's
keys for `PLATFORM_AUTH=entra`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.loopback import LoopbackServer, Response
from tests.integration.azurite import AZURITE, Azurite
from tests.tokens import AUDIENCE, TENANT, Issuer


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A running Azurite (`npm install` puts it in node_modules), stopped after the session."""
    if not AZURITE.exists():
        pytest.skip(f"{AZURITE} is missing: run `npm install` at the project root")
    emulator = Azurite()
    try:
        yield emulator.wait_ready()
    finally:
        emulator.stop()


@dataclass
class Entra:
    """A tenant's signing key and the devhost settings of `PLATFORM_AUTH=entra` against it:
    the JWKS served over TLS on loopback, trusted through `SSL_CERT_FILE`."""

    issuer: Issuer
    env: dict[str, str]

    def token(self, *roles: str, **claims: Any) -> str:
        return self.issuer.token(roles=list(roles), **claims)


@pytest.fixture
def entra(tmp_path: Path) -> Iterator[Entra]:
    issuer = Issuer(tmp_path / "issuer")
    with LoopbackServer(tls_dir=tmp_path / "jwks-tls") as server:
        server.route("GET", "/keys", lambda _: Response(200, {"keys": [issuer.jwk()]}))
        env = {
            "PLATFORM_AUTH": "entra",
            "ENTRA_TENANT_ID": TENANT,
            "ENTRA_AUDIENCE": AUDIENCE,
            "ENTRA_JWKS_URL": server.url + "/keys",
            "SSL_CERT_FILE": str(server.cert_path),
        }
        yield Entra(issuer, env)
