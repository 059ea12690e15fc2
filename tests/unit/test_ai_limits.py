"""Per-app limits by reservation: the arithmetic of reserving and settling, rate and quota
refusals with their retry advice, windows and periods rolling over on an injected clock, and
the counters kept small."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from embedded.documents.store import DocumentStore
from shared.ai.admission import (
    AlreadySettled,
    InvalidReservation,
    Limit,
    Refusal,
    Remaining,
    Reservation,
)
from shared.ai.app_limits import AppLimits
from shared.ai.apps import App
from shared.ai.limits import LIMITS_CONTAINER, PRUNE_AT, PRUNE_GRACE_SLOTS, Limiter
from shared.ai.rate_window import (
    SLOTS,
    admission_ratio,
    period_end,
    period_key,
    retry_after_ms,
    slot_of,
)
from shared.documents.port import DocumentContainer
from tests.fakes.cosmos import container_on

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

T0 = dt.datetime(2025, 3, 14, 12, 0, 0, tzinfo=dt.UTC).timestamp()  # on a slot's edge


def app(
    tpm: int = 1000, rpm: int = 100, quota: int = 100_000, period: str = "month", cap: int = 500
) -> App:
    limits = AppLimits(tpm, rpm, quota, period, cap)  # type: ignore[arg-type]
    return App("app-00000000000000aa", "test", limits, "2025-01-01T00:00:00.000000Z")


@pytest.fixture
def container(tmp_path: Path) -> Iterator[DocumentContainer]:
    store = DocumentStore(tmp_path / "documents" / "platform.sqlite3")
    yield store.container(LIMITS_CONTAINER)
    store.close()


@pytest.fixture
def limiter(container: DocumentContainer) -> Limiter:
    return Limiter(container, clock=lambda: T0)


def admitted(result: Reservation | Refusal) -> Reservation:
    assert isinstance(result, Reservation), result
    return result


def refused(result: Reservation | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_a_reservation_caps_max_tokens_and_says_what_is_left(limiter: Limiter) -> None:
    first = admitted(limiter.reserve(app(), 100, 10_000))  # now: the limiter's clock
    assert (first.tokens, first.prompt_tokens, first.max_tokens, first.at) == (600, 100, 500, T0)
    assert first.remaining == Remaining(tokens=400, requests=99, quota=99_400)
    assert first.remaining.headers() == {
        "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-remaining-requests": "99",
    }
    assert refused(limiter.reserve(app(), 50, None, now=T0 + 1)).limit is Limit.TOKENS  # 550
    second = admitted(limiter.reserve(app(), 50, 200, now=T0 + 1))
    assert second.tokens == 250 and second.remaining.tokens == 150
    assert limiter.remaining(app(), now=T0 + 2) == Remaining(150, 98, 99_150)


def test_settling_corrects_the_counters_to_the_usage(limiter: Limiter) -> None:
    reservation = admitted(limiter.reserve(app(), 100, 500, now=T0))
    limiter.settle(reservation, 250, now=T0 + 3)
    assert limiter.remaining(app(), now=T0 + 3) == Remaining(750, 99, 99_750)
    with pytest.raises(AlreadySettled):
        limiter.settle(reservation, 250, now=T0 + 3)
    above = admitted(limiter.reserve(app(), 100, 100, now=T0 + 4))  # the prompt counted low
    limiter.settle(above, 300, now=T0 + 5)
    assert limiter.remaining(app(), now=T0 + 5) == Remaining(450, 98, 99_450)
    nothing = admitted(limiter.reserve(app(), 100, 300, now=T0 + 6))
    limiter.settle(nothing, 0, now=T0 + 6)  # failed before the upstream counted anything
    counters = limiter.container.read(app().id, app().id)
    assert all(value >= 0 for name in "trq" for value in counters[name].values())
    assert limiter.remaining(app(), now=T0 + 6) == Remaining(450, 97, 99_450)


def test_over_the_rate_the_refusal_says_when_to_retry(limiter: Limiter) -> None:
    admitted(limiter.reserve(app(), 100, 500, now=T0 + 10.2))
    assert admitted(limiter.reserve(app(), 0, 400, now=T0 + 30.5)).remaining.tokens == 0
    refusal = refused(limiter.reserve(app(), 0, 100, now=T0 + 40))
    # The slot of T0 + 10 counts until T0 + 71, 31 s from now.
    assert (refusal.limit, refusal.retry_after_ms, refusal.status) == (Limit.TOKENS, 31_000, 429)
    assert refusal.retryable and "retry in 31 s" in refusal.message
    assert refusal.headers() == {
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-remaining-requests": "98",
        "retry-after": "31",
        "retry-after-ms": "31000",
    }
    assert refused(limiter.reserve(app(), 0, 100, now=T0 + 70.99)).retry_after_ms == 10
    assert admitted(limiter.reserve(app(), 0, 100, now=T0 + 71)).remaining.tokens == 500


def test_over_the_request_rate_the_refusal_names_requests(limiter: Limiter) -> None:
    few = app(tpm=100_000, rpm=2)
    admitted(limiter.reserve(few, 10, 10, now=T0))
    admitted(limiter.reserve(few, 10, 10, now=T0 + 5))
    refusal = refused(limiter.reserve(few, 10, 10, now=T0 + 6))
    assert (refusal.limit, refusal.retry_after_ms) == (Limit.REQUESTS, 55_000)
    assert refusal.remaining.requests == 0 and "requests per minute" in refusal.message
    assert admitted(limiter.reserve(few, 10, 10, now=T0 + 61)).remaining.requests == 0


def test_over_the_quota_403_and_no_retry_until_the_next_day(limiter: Limiter) -> None:
    daily = app(tpm=10_000, quota=1000, period="day")
    evening = dt.datetime(2025, 3, 14, 23, 59, 0, tzinfo=dt.UTC).timestamp()
    limiter.settle(admitted(limiter.reserve(daily, 100, 500, now=evening)), 600, now=evening)
    refusal = refused(limiter.reserve(daily, 100, 400, now=evening + 30))
    assert (refusal.limit, refusal.retry_after_ms, refusal.status) == (Limit.QUOTA, None, 403)
    assert not refusal.retryable and refusal.remaining.quota == 400
    assert refusal.headers()["x-should-retry"] == "false"
    assert "retry-after" not in refusal.headers()
    assert "daily quota of 1000 tokens is used up until 2025-03-15T00:00Z" in refusal.message
    assert admitted(limiter.reserve(daily, 100, 300, now=evening + 60)).remaining.quota == 600


def test_a_monthly_quota_rolls_over_with_the_year(limiter: Limiter) -> None:
    monthly = app(tpm=10_000, quota=1000)
    new_year = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    admitted(limiter.reserve(monthly, 400, 500, now=new_year - 60))
    refusal = refused(limiter.reserve(monthly, 100, 100, now=new_year - 10))
    assert refusal.limit is Limit.QUOTA and "until 2026-01-01T00:00Z" in refusal.message
    assert admitted(limiter.reserve(monthly, 100, 100, now=new_year + 1)).remaining.quota == 800


def test_a_request_larger_than_a_minute_is_never_admitted(limiter: Limiter) -> None:
    refusal = refused(limiter.reserve(app(), 600, 500, now=T0))
    assert (refusal.limit, refusal.retry_after_ms, refusal.status) == (
        Limit.REQUEST_SIZE,
        None,
        429,
    )
    assert refusal.headers()["x-should-retry"] == "false" and "1100 tokens" in refusal.message
    assert refusal.remaining == Remaining(1000, 100, 100_000)


def test_the_minute_has_no_edge(limiter: Limiter) -> None:
    """A fixed minute would admit 1000 tokens at 11:59:59.9 and 1000 more at 12:00:00.1."""
    admitted(limiter.reserve(app(), 0, 500, now=T0 - 0.1))
    admitted(limiter.reserve(app(), 0, 500, now=T0 - 0.1))
    assert refused(limiter.reserve(app(), 0, 500, now=T0 + 0.1)).limit is Limit.TOKENS


class RacingReads:
    """The container, but another request gets in while a reservation reads the counters."""

    def __init__(self, inner: DocumentContainer, racer: Any) -> None:
        self.inner = inner
        self.racer = racer

    def read(self, id: str, partition_key: Any) -> Any:
        try:
            return self.inner.read(id, partition_key)
        finally:
            racer, self.racer = self.racer, None
            if racer is not None:
                racer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_request_that_loses_a_race_is_refused_and_taken_back(
    container: DocumentContainer,
) -> None:
    other = Limiter(container)
    racing: Any = RacingReads(container, lambda: other.reserve(app(), 300, 500, now=T0))
    refusal = refused(Limiter(racing).reserve(app(), 100, 500, now=T0))
    assert refusal.limit is Limit.TOKENS and refusal.remaining == Remaining(200, 99, 99_200)
    counters = container.read(app().id, app().id)
    slot = str(slot_of(T0))
    assert (counters["t"], counters["r"]) == ({slot: 800}, {slot: 1})  # the racer's only
    assert counters["q"] == {period_key(T0, "month"): 800}


def test_an_unsettled_reservation_expires_with_its_window(limiter: Limiter) -> None:
    admitted(limiter.reserve(app(), 0, 500, now=T0))
    admitted(limiter.reserve(app(), 0, 500, now=T0 + 0.5))  # neither is ever settled
    assert refused(limiter.reserve(app(), 0, 100, now=T0 + 60.5)).retry_after_ms == 500
    later = admitted(limiter.reserve(app(), 0, 100, now=T0 + 61))
    assert later.remaining == Remaining(900, 99, 100_000 - 1100)  # the quota keeps them


def test_a_late_settlement_corrects_only_what_still_counts(limiter: Limiter) -> None:
    reservation = admitted(limiter.reserve(app(), 100, 500, now=T0))
    limiter.settle(reservation, 100, now=T0 + 100)  # the slot has left the window
    counters = limiter.container.read(app().id, app().id)
    assert counters["t"][str(slot_of(T0))] == 600
    assert counters["q"][period_key(T0, "month")] == 100
    daily = app(period="day")
    tomorrow = period_end(T0, "day").timestamp() + 1
    late = admitted(limiter.reserve(daily, 100, 500, now=T0 + 200))
    limiter.settle(late, 0, now=tomorrow)  # yesterday's quota is past correcting
    assert limiter.container.read(app().id, app().id)["q"][period_key(T0, "day")] == 600


def test_the_counters_stay_small(limiter: Limiter) -> None:
    daily = app(tpm=100_000, rpm=1000, quota=10**9, period="day")
    midnight = period_end(T0, "day").timestamp()
    start = midnight - 100
    sizes = []
    for second in range(450):
        now = start + second
        limiter.settle(admitted(limiter.reserve(daily, 10, 10, now=now)), 15, now=now)
        counters = limiter.container.read(daily.id, daily.id)
        sizes.append(max(len(counters["t"]), len(counters["r"])))
    assert max(sizes) <= SLOTS + 1 + PRUNE_GRACE_SLOTS + PRUNE_AT  # window, grace, a prune's worth
    assert list(counters["q"]) == [period_key(midnight, "day")]  # yesterday's pruned


def test_a_request_whose_clock_lags_the_pruned_counters_is_refused(limiter: Limiter) -> None:
    busy = app(tpm=100_000, rpm=1000)
    for second in range(80):  # slots more than 70 s old are pruned, the floor moves past them
        admitted(limiter.reserve(busy, 1, 1, now=T0 + second))
    floor = limiter.container.read(busy.id, busy.id)["floor"]
    assert (
        floor > slot_of(T0)
        and str(slot_of(T0)) not in limiter.container.read(busy.id, busy.id)["t"]
    )
    refusal = refused(limiter.reserve(busy, 1, 1, now=T0 + 5))  # its window would miss them
    assert refusal.retry_after_ms == 1000 and "clock is behind" in refusal.message
    assert admitted(limiter.reserve(busy, 1, 1, now=T0 + 80)).at == T0 + 80


@pytest.mark.parametrize(
    ("prompt", "max_tokens"),
    [(-1, 10), (True, 10), (1.5, 10), (10**9, 10), ("10", 10), (10, -1), (10, -5), (10, 2.0)],
)
def test_counts_that_are_not_counts_are_refused(
    limiter: Limiter, prompt: Any, max_tokens: Any
) -> None:
    with pytest.raises(InvalidReservation):
        limiter.reserve(app(), prompt, max_tokens, now=T0)


def test_an_embeddings_request_reserves_its_prompt_alone(limiter: Limiter) -> None:
    reservation = admitted(limiter.reserve(app(), 10, 0, now=T0))
    assert (reservation.tokens, reservation.max_tokens) == (10, 0)


def test_a_settlement_must_be_a_count(limiter: Limiter) -> None:
    reservation = admitted(limiter.reserve(app(), 10, 10, now=T0))
    for bad in (-1, None, 1.5, True):
        with pytest.raises(InvalidReservation):
            limiter.settle(reservation, bad, now=T0)  # type: ignore[arg-type]
    limiter.settle(reservation, 20, now=T0)


def test_the_limiter_on_cosmos_db(tmp_path: Path) -> None:
    with container_on("cosmos", LIMITS_CONTAINER, tmp_path) as container:
        other = Limiter(container)
        limiter = Limiter(RacingReads(container, None))  # type: ignore[arg-type]
        first = admitted(limiter.reserve(app(), 100, 500, now=T0))
        limiter.settle(first, 200, now=T0 + 1)
        assert limiter.remaining(app(), now=T0 + 1) == Remaining(800, 99, 99_800)
        limiter.container.racer = lambda: other.reserve(app(), 300, 400, now=T0 + 2)  # type: ignore[attr-defined]
        assert refused(limiter.reserve(app(), 100, 500, now=T0 + 2)).limit is Limit.TOKENS
        assert limiter.remaining(app(), now=T0 + 2) == Remaining(100, 98, 99_100)


def test_retry_advice_and_periods() -> None:
    window = {10: 600, 30: 400}
    assert retry_after_ms(window, 100, now=40) == 31_000
    assert retry_after_ms(window, 700, now=40) == 51_000
    assert retry_after_ms(window, 2000, now=40) == 60_000
    assert retry_after_ms(window, 100, now=70.9999) == 1
    moment = dt.datetime(2025, 12, 31, 23, 59, tzinfo=dt.UTC).timestamp()
    assert (period_key(moment, "day"), period_key(moment, "month")) == ("d2025-12-31", "m2025-12")
    assert period_end(moment, "month") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert period_end(moment, "day") == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_the_admission_ratio_is_the_worst_minute_of_real_time() -> None:
    assert admission_ratio([(0, 500), (30, 500), (59.9, 100)], 1000) == pytest.approx(1.1)
    assert admission_ratio([(0, 1000), (60, 1000)], 1000) == 1.0
    assert admission_ratio([(59.9, 1000), (60.1, 1000)], 1000) == 2.0  # a fixed minute's edge
    assert admission_ratio([], 1000) == 0.0
    with pytest.raises(ValueError):
        admission_ratio([(0, 1)], 0)
