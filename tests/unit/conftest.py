"""Fixtures shared by the unit tests of the devhost's listeners."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from devhost.invocation import Invoker


@pytest.fixture
async def invoker() -> AsyncIterator[Invoker]:
    """A real invoker with a small thread pool, closed afterwards."""
    running = Invoker(max_threads=2)
    yield running
    running.close()


@pytest.fixture
def io() -> Iterator[ThreadPoolExecutor]:
    """A pool for the listeners' blocking I/O."""
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True)
