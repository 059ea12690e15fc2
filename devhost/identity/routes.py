"""`GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json` at the host's root:
the local issuer's discovery document and public keys, anonymous, as a tenant publishes them."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from devhost.errors import StartupError
from embedded.identity.keyfile import IssuerKeyError
from embedded.identity.local_issuer import (
    JWKS_PATH,
    OPENID_CONFIGURATION_PATH,
    LocalIssuer,
)

CACHE_CONTROL = "no-cache"  # a deleted key comes back new on the next start


def open_issuer(data_dir: Path) -> LocalIssuer:
    """The data dir's issuer, its key and JWKS file created if missing; StartupError if not."""
    try:
        return LocalIssuer.open(data_dir)
    except (IssuerKeyError, OSError) as error:
        raise StartupError(f"the local token issuer cannot start: {error}") from error


class IssuerRoutes:
    """Serves one issuer's documents; links are built from the host's public address."""

    def __init__(self, issuer: LocalIssuer, base_url: str) -> None:
        self._issuer = issuer
        self._base_url = base_url.rstrip("/")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(OPENID_CONFIGURATION_PATH, self._openid_configuration),
            web.get(JWKS_PATH, self._jwks),
        ]

    def describe(self) -> list[str]:
        return [
            f"token issuer: {self._base_url}{OPENID_CONFIGURATION_PATH} "
            "(tokens: python -m devhost token --role ROLE)"
        ]

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        document = self._issuer.openid_configuration(self._base_url)
        return web.json_response(document, headers={"Cache-Control": CACHE_CONTROL})

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self._issuer.jwks(), headers={"Cache-Control": CACHE_CONTROL})
