"""The limit's accuracy under concurrent callers (1, 10 and 100 threads) on the embedded store:
admitted tokens / the limit stays within one reservation's share of 1 (it is at most 1 by
construction), in one minute and over several, on a clock moving with the calls and on one
running 200 times faster than real time."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from embedded.documents.store import DocumentStore
from shared.ai.admission import Reservation
from shared.ai.app_limits import AppLimits
from shared.ai.apps import App
from shared.ai.limits import LIMITS_CONTAINER, Limiter
from shared.ai.rate_window import admission_ratio

pytestmark = pytest.mark.unit

LIMIT = 10_000
PROMPT, MAX_TOKENS = 150, 100  # one reservation: 250 tokens, 2.5% of the limit
SHARE = (PROMPT + MAX_TOKENS) / LIMIT
T0 = 1_750_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DocumentStore]:
    found = DocumentStore(tmp_path / "documents" / "platform.sqlite3")
    yield found
    found.close()


def app(name: str) -> App:
    limits = AppLimits(LIMIT, 1_000_000, 10**12, max_tokens_cap=MAX_TOKENS)
    return App(name, name, limits, "2025-01-01T00:00:00.000000Z")


def hammer(
    store: DocumentStore, caller: App, threads: int, clock: Callable[[], float], until: float
) -> list[tuple[float, int]]:
    """Every thread reserves as fast as it can until the clock reaches `until`; the admitted
    (time, tokens) pairs, each at the time the limiter read from the clock."""
    limiter = Limiter(store.container(LIMITS_CONTAINER), clock=clock)
    peek = getattr(clock, "peek", clock)
    admitted: list[tuple[float, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def call() -> None:
        start.wait()
        while peek() < until:
            result = limiter.reserve(caller, PROMPT, MAX_TOKENS)
            if isinstance(result, Reservation):
                with lock:
                    admitted.append((result.at, result.tokens))

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return admitted


class StepClock:
    """A clock that moves on by `step` seconds at each reading: time passes with the calls,
    however slowly the threads run."""

    def __init__(self, step: float) -> None:
        self.step = step
        self._readings = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self._readings += 1
            return T0 + self._readings * self.step

    def peek(self) -> float:
        return T0 + self._readings * self.step


@pytest.mark.parametrize("threads", [1, 10, 100])
def test_one_minute_admits_the_limit_exactly(store: DocumentStore, threads: int) -> None:
    """All callers within ten seconds: exactly limit / reservation requests get in."""
    clock = StepClock(0.01)
    admitted = hammer(store, app(f"minute-{threads}"), threads, clock, T0 + 10)
    assert sum(tokens for _, tokens in admitted) == LIMIT
    assert admission_ratio(admitted, LIMIT) == 1.0


@pytest.mark.parametrize("threads", [1, 10, 100])
def test_every_minute_fills_again(store: DocumentStore, threads: int) -> None:
    """Three and a half minutes of a clock moving with the calls: over any 60 s admissions stay
    within the limit, and each 61 s from the first admission's slot (a slot's tokens come back
    61 s after it starts) admits the limit again, to within one reservation."""
    clock = StepClock(0.05)
    admitted = hammer(store, app(f"fills-{threads}"), threads, clock, T0 + 210)
    assert admission_ratio(admitted, LIMIT) <= 1.0
    first = math.floor(min(at for at, _ in admitted))
    for start in (first, first + 61, first + 122):
        tokens = sum(n for at, n in admitted if start <= at < start + 61)
        assert tokens >= LIMIT * (1 - SHARE), (start - T0, tokens)


@pytest.mark.parametrize("threads", [1, 10, 100])
def test_any_minute_of_real_time_stays_within_the_limit(store: DocumentStore, threads: int) -> None:
    """Real threads on a clock 200 times fast for three and a half minutes, so that requests
    also wait on one another in real time: over any 60 s admissions stay within the limit (the
    goal is one reservation's share over it), and some minute fills to within one reservation."""
    started = time.monotonic()

    def clock() -> float:
        return T0 + (time.monotonic() - started) * 200

    admitted = hammer(store, app(f"real-{threads}"), threads, clock, T0 + 210)
    ratio = admission_ratio(admitted, LIMIT)
    assert 1 - SHARE <= ratio <= 1 + SHARE
    assert ratio <= 1.0  # the times are the ones the limiter took: exact
