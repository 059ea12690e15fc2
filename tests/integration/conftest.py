"""Fixtures of the integration tier: Azurite for the ADLS Gen2 lake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.azurite import AZURITE, Azurite


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
