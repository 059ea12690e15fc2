"""The host tunes the garbage collector once it has started: start-up objects frozen, young
collections less frequent, the older generations' thresholds untouched."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from devhost.host import settle_collector

pytestmark = pytest.mark.unit


@pytest.fixture
def restore_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_collector")
def test_start_up_objects_are_frozen_and_young_collections_spaced_out() -> None:
    gc.unfreeze()
    survivor = [object() for _ in range(10)]  # a list: tracked by the collector
    _, middle, old = gc.get_threshold()

    settle_collector(young_threshold=12_345)

    assert gc.get_freeze_count() > 0
    assert not any(survivor is obj for obj in gc.get_objects())  # frozen objects are not listed
    assert gc.get_threshold() == (12_345, middle, old)
