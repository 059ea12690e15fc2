"""The trigger extensions the devhost knows, keyed by the trigger types they listen for."""

from __future__ import annotations

from devhost.extension import ExtensionFactory
from devhost.http.extension import HttpExtension

EXTENSIONS: list[ExtensionFactory] = [
    HttpExtension,
]
