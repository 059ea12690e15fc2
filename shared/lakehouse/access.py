"""How deltalake reaches the lake: nothing for a local folder, Azurite's well-known account
for the emulator, or an Entra ID token (DefaultAzureCredential) for ADLS Gen2, refreshed
before it expires. Writers reopen their table handles when the options change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from shared.config import Adapter, LakeSettings

STORAGE_SCOPE = "https://storage.azure.com/.default"
# Azurite's documented development account; it is public and only ever valid on the emulator.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_REFRESH_MARGIN_S = 300.0


class LakeAccess(Protocol):
    """The deltalake storage options to use now, and a generation that changes with them."""

    def current(self) -> tuple[dict[str, str] | None, int]: ...


class StaticAccess:
    """Options that never change (a local folder: none)."""

    def __init__(self, options: dict[str, str] | None = None) -> None:
        self._options = options

    def current(self) -> tuple[dict[str, str] | None, int]:
        return (dict(self._options) if self._options else None), 0


class TokenCredential(Protocol):
    def get_token(self, *scopes: str) -> Any: ...


class EntraAccess:
    """A bearer token for Azure Storage from an Entra ID credential, renewed ahead of expiry."""

    def __init__(self, credential: TokenCredential, clock: Callable[[], float] = time.time) -> None:
        self._credential = credential
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0
        self._generation = 0

    def current(self) -> tuple[dict[str, str] | None, int]:
        with self._lock:
            if self._token is None or self._clock() > self._expires_on - _REFRESH_MARGIN_S:
                token = self._credential.get_token(STORAGE_SCOPE)
                self._token, self._expires_on = token.token, float(token.expires_on)
                self._generation += 1
            return {"bearer_token": self._token}, self._generation


def emulator_options(endpoint: str, account: str = AZURITE_ACCOUNT) -> dict[str, str]:
    """Options for Azurite at `endpoint` (e.g. http://127.0.0.1:10000)."""
    return {
        "account_name": account,
        "account_key": AZURITE_KEY,
        "azure_storage_endpoint": f"{endpoint.rstrip('/')}/{account}",
        "allow_http": "true",
    }


def account_of(uri: str) -> str:
    """The storage account of an `abfss://<container>@<account>.dfs.core.windows.net/` URI."""
    return uri.removeprefix("abfss://").partition("@")[2].split(".", 1)[0]


def lake_access(settings: LakeSettings) -> LakeAccess:
    """The access the lake settings call for."""
    if settings.adapter is Adapter.LOCAL:
        return StaticAccess()
    if settings.emulator_endpoint is not None:
        return StaticAccess(emulator_options(settings.emulator_endpoint, account_of(settings.uri)))
    from azure.identity import DefaultAzureCredential

    return EntraAccess(DefaultAzureCredential())
