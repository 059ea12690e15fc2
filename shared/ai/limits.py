"""Per-app limits by reservation: a request is admitted only if its prompt tokens plus its capped
`max_tokens` fit the app's tokens per minute, its requests per minute and its token quota; once
the upstream has answered, the reservation is settled to the tokens really used. The answers
(`Reservation`, `Refusal` and what their headers say) are `shared.ai.admission`'s.

Counters: one document per app in `LIMITS_CONTAINER` (partitioned by app), holding tokens and
requests per one-second slot (`t`, `r`: slot -> count, see `shared.ai.rate_window`) and tokens
per quota period (`q`: `d2025-01-31` or `m2025-01` -> count).

Admission reads, then increments, checks and undoes, with no etag:

1. a point read of the counters refuses what plainly does not fit (most refusals end here,
   for a read's price, and leave nothing behind);
2. one patch adds the request's tokens and one request to the current slot and the tokens to
   the period, atomically, and answers the counters as they now are;
3. if a sum is then over a limit (others got in since the read), a second patch takes the
   request back out and it is refused.

Every admitted request saw totals that included every request admitted before it, so the
reserved tokens never pass a limit, whatever the concurrency: over any 60 seconds of real time,
at most the limit (see `shared.ai.rate_window`); only a settlement above its reservation (a
prompt counted low) can add more. A request refused while another's undo is in
flight may be refused early; none is admitted late. Optimistic concurrency (read, then replace
on the etag) gives the same guarantee, but concurrent callers of one app then retry against
each other, more the more they are; increments never conflict.

- Settling adds (actual - reserved) to the reservation's slot and period, unless it has left
  the window (or the period) already. A slot's count includes the reservation's own tokens, so
  it never goes below zero.
- A reservation never settled (a crash) leaves the rate window with its slot, within 61 seconds;
  it stays charged to its quota period in full (the conservative side).
- Slots and periods out of use are removed a few at a time by a later admission (a patch has at
  most 10 operations on Cosmos DB), `PRUNE_GRACE_SLOTS` after they left the window, and the
  counters' `floor` moves past them in the same patch. A request whose window would reach
  below the floor (its clock lags the pruner's by more than the grace: it waited that long, or
  its instance's clock is behind) would miss those slots, so it is refused, to retry at once.
  The document expires `COUNTERS_TTL_SECONDS` after its last write, so an app idle for longer
  than a month starts afresh.
- Within a process, at most `IN_FLIGHT_PER_APP` calls of one app touch its counters at once.
  Writes to one document queue in the store anyway (SQLite's write lock, Cosmos DB's per-item
  ordering); more in flight only adds waiting there (SQLite's busy handler sleeps up to 100 ms
  a turn: 100 threads at once took seconds, 8 at a time a tenth of one) and undone increments.
- Store errors (`Throttled`, `DocumentStoreError`) propagate: the caller answers 503.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from shared.ai.rate_window import (
    SLOT_SECONDS,
    SLOTS,
    in_window,
    period_end,
    period_key,
    retry_after_ms,
    slot_of,
    stale_slots,
    whole_count,
    window_counts,
)
from shared.documents.port import (
    ContainerSpec,
    DocumentConflict,
    DocumentContainer,
    DocumentNotFound,
    DocumentStoreError,
    Json,
    PatchOperation,
)

log = logging.getLogger(__name__)

LIMITS_CONTAINER = ContainerSpec("ai_limits", "/app", default_ttl=-1)
COUNTERS_TTL_SECONDS = 35 * 24 * 3600  # past the longest quota period
MAX_PROMPT_TOKENS = 10_000_000
MAX_REQUEST_TOKENS = 2**31
PRUNE_AT = 5  # stale slots before a prune
PRUNE_GRACE_SLOTS = 10  # slots kept past the window, for requests whose clocks lag
PERIOD_GRACE_SECONDS = 300  # a period is kept this long past its end, for clocks that differ
MAX_PATCH_OPERATIONS = 10  # Cosmos DB's limit
UNDO_ATTEMPTS = 3
IN_FLIGHT_PER_APP = 8
_ADJECTIVES = {"day": "daily", "month": "monthly"}


@dataclass(frozen=True)
class _Usage:
    """An app's counters as seen from one slot: the window's slots, the period's total, and
    whether the window is whole (no slot of it pruned: the slot is not behind the floor)."""

    tokens: dict[int, int]
    requests: dict[int, int]
    quota_used: int
    whole: bool = True

    @classmethod
    def of(cls, document: Mapping[str, Any] | None, slot: int, period: str) -> _Usage:
        document = document or {}
        return cls(
            window_counts(_counts(document, "t"), slot),
            window_counts(_counts(document, "r"), slot),
            max(0, whole_count(_counts(document, "q").get(period, 0))),
            slot - SLOTS >= _floor(document),
        )

    def including(self, slot: int, tokens: int) -> _Usage:
        """These counters with one more request of `tokens` in `slot`."""
        return _Usage(
            {**self.tokens, slot: self.tokens.get(slot, 0) + tokens},
            {**self.requests, slot: self.requests.get(slot, 0) + 1},
            self.quota_used + tokens,
            self.whole,
        )

    def remaining(self, limits: AppLimits, tokens: int = 0, requests: int = 0) -> Remaining:
        """What is left, not counting `tokens` and `requests` of these counters."""
        return Remaining(
            max(0, limits.tokens_per_minute - sum(self.tokens.values()) + tokens),
            max(0, limits.requests_per_minute - sum(self.requests.values()) + requests),
            max(0, limits.token_quota - self.quota_used + tokens),
        )


class Limiter:
    """Reservations against the counters in a document container (`LIMITS_CONTAINER`)."""

    def __init__(self, container: DocumentContainer, clock: Callable[[], float] = time.time):
        self.container = container
        self._clock = clock
        self._pruning = threading.Lock()
        self._gates: dict[str, threading.BoundedSemaphore] = {}
        self._gates_lock = threading.Lock()

    def reserve(
        self, app: App, prompt_tokens: int, max_tokens: int | None, now: float | None = None
    ) -> Reservation | Refusal:
        """Admit a request of `prompt_tokens` asking for `max_tokens` (None: the app's cap;
        more is capped), or refuse it, saying which limit. `now` (None: the clock, read once
        the app's turn has come) is the time the request is admitted at."""
        _check_count("prompt_tokens", prompt_tokens, 0, MAX_PROMPT_TOKENS)
        if max_tokens is not None:
            _check_count("max_tokens", max_tokens, 0, MAX_REQUEST_TOKENS)  # 0: embeddings
        limits = app.limits
        cap = limits.max_tokens_cap
        capped = cap if max_tokens is None else min(max_tokens, cap)
        needed = prompt_tokens + capped
        if needed > min(limits.tokens_per_minute, limits.token_quota):
            return Refusal(
                Limit.REQUEST_SIZE,
                None,
                self.remaining(app, now),
                f"the request needs {needed} tokens ({prompt_tokens} in the prompt, {capped} "
                f"max_tokens), more than the app's {limits.tokens_per_minute} tokens per minute "
                f"or {limits.token_quota} quota allow",
            )
        with self._gate(app.id):
            now = self._clock() if now is None else now
            admitted = self._admit(app, needed, now)
        if isinstance(admitted, Refusal):
            return admitted
        slot, period, remaining = admitted
        return Reservation(app.id, needed, prompt_tokens, capped, slot, period, now, remaining)

    def _admit(self, app: App, needed: int, now: float) -> Refusal | tuple[int, str, Remaining]:
        """Read, then increment, check, and undo if over; the slot, period and what is left."""
        limits = app.limits
        slot, period = slot_of(now), period_key(now, limits.quota_period)
        seen = _Usage.of(self._read(app.id), slot, period).including(slot, needed)
        refusal = _refusal(limits, seen, needed, now)
        if refusal is not None:  # refused on a read: nothing counted, nothing to undo
            return refusal
        document = self._add(app.id, _changes(slot, period, needed, 1))
        usage = _Usage.of(document, slot, period)
        refusal = _refusal(limits, usage, needed, now)
        if refusal is not None:
            self._undo(app.id, _changes(slot, period, -needed, -1))
            return refusal
        self._prune(app.id, document, slot, limits, now)
        return slot, period, usage.remaining(limits)

    def settle(
        self, reservation: Reservation, actual_tokens: int, now: float | None = None
    ) -> None:
        """Correct the counters from the reservation to `actual_tokens` (prompt and completion,
        as the upstream counted them); once per reservation (AlreadySettled)."""
        _check_count("actual_tokens", actual_tokens, 0, MAX_REQUEST_TOKENS)
        if reservation.settled:
            raise AlreadySettled(f"the reservation of {reservation.app_id} is settled already")
        reservation.settled = True
        now = self._clock() if now is None else now
        delta = actual_tokens - reservation.tokens
        operations = []
        if delta and in_window(reservation.slot, slot_of(now)):
            operations.append(PatchOperation("incr", f"/t/{reservation.slot}", delta))
        kind = "day" if reservation.period.startswith("d") else "month"
        if delta and reservation.period == period_key(now, kind):
            operations.append(PatchOperation("incr", f"/q/{reservation.period}", delta))
        if operations:
            try:
                with self._gate(reservation.app_id):
                    self.container.patch(reservation.app_id, reservation.app_id, operations)
            except DocumentNotFound:  # expired with the app's idleness: nothing to correct
                pass

    def remaining(self, app: App, now: float | None = None) -> Remaining:
        """What the app has left now (one point read), for answers that reserve nothing."""
        now = self._clock() if now is None else now
        period = period_key(now, app.limits.quota_period)
        return _Usage.of(self._read(app.id), slot_of(now), period).remaining(app.limits)

    def _gate(self, app_id: str) -> threading.BoundedSemaphore:
        """The app's turnstile in this process: `IN_FLIGHT_PER_APP` of its calls at a time."""
        with self._gates_lock:
            gate = self._gates.get(app_id)
            if gate is None:
                gate = self._gates[app_id] = threading.BoundedSemaphore(IN_FLIGHT_PER_APP)
            return gate

    def _read(self, app_id: str) -> dict[str, Json] | None:
        try:
            return self.container.read(app_id, app_id)
        except DocumentNotFound:
            return None

    def _add(self, app_id: str, operations: Sequence[PatchOperation]) -> dict[str, Json]:
        """Apply the increments, creating the app's counters on its first request."""
        try:
            return self.container.patch(app_id, app_id, operations)
        except DocumentNotFound:
            pass
        empty = {"id": app_id, "app": app_id, "ttl": COUNTERS_TTL_SECONDS, "t": {}, "r": {}}
        try:
            self.container.create({**empty, "q": {}})
        except DocumentConflict:  # another request created them meanwhile
            pass
        return self.container.patch(app_id, app_id, operations)

    def _undo(self, app_id: str, operations: Sequence[PatchOperation]) -> None:
        for attempt in range(UNDO_ATTEMPTS):
            try:
                self.container.patch(app_id, app_id, operations)
                return
            except DocumentNotFound:
                return
            except DocumentStoreError as error:
                if attempt == UNDO_ATTEMPTS - 1:  # the counters stay high: refusals, not excess
                    log.warning("limits: a refused request's tokens stay counted: %s", error)

    def _prune(
        self, app_id: str, document: Mapping[str, Any], slot: int, limits: AppLimits, now: float
    ) -> None:
        """Remove slots and periods out of use, a patch's worth, when enough have gathered;
        best effort (another instance may have removed them first)."""
        tokens, requests, quota = (_counts(document, name) for name in ("t", "r", "q"))
        stale = stale_slots(tokens | requests, slot - PRUNE_GRACE_SLOTS)
        kept = {period_key(now + d, limits.quota_period) for d in (-PERIOD_GRACE_SECONDS, 0)}
        kept.add(period_key(now + PERIOD_GRACE_SECONDS, limits.quota_period))
        periods = [key for key in quota if key not in kept]
        if len(stale) < PRUNE_AT and not periods:
            return
        if not self._pruning.acquire(blocking=False):
            return
        try:
            removals = [PatchOperation("remove", f"/q/{key}") for key in periods]
            operations = removals[: MAX_PATCH_OPERATIONS - 1]
            removed = []
            for key in stale:
                fields = [
                    name for name, counts in (("t", tokens), ("r", requests)) if key in counts
                ]
                if len(operations) + len(fields) >= MAX_PATCH_OPERATIONS:  # one left: the floor
                    break
                operations += [PatchOperation("remove", f"/{name}/{key}") for name in fields]
                removed.append(int(key))
            if removed:  # windows reaching below it are refused: they would miss these slots
                floor = max(_floor(document), max(removed) + 1)
                operations.append(PatchOperation("set", "/floor", floor))
            self.container.patch(app_id, app_id, operations)
        except DocumentStoreError as error:
            log.debug("limits: pruning %s's counters gave way: %s", app_id, error)
        finally:
            self._pruning.release()


def _refusal(limits: AppLimits, usage: _Usage, needed: int, now: float) -> Refusal | None:
    """The refusal of a request whose `needed` tokens (and one request) the usage includes;
    None when it fits."""
    remaining = usage.remaining(limits, needed, 1)
    if not usage.whole:
        return Refusal(
            Limit.TOKENS,
            SLOT_SECONDS * 1000,
            remaining,
            "the request's clock is behind the app's counters (it waited long, or this "
            "instance's clock lags); retry",
        )
    if usage.quota_used > limits.token_quota:
        ends = period_end(now, limits.quota_period).strftime("%Y-%m-%dT%H:%MZ")
        return Refusal(
            Limit.QUOTA,
            None,
            remaining,
            f"the app's {_ADJECTIVES[limits.quota_period]} quota of {limits.token_quota} tokens "
            f"is used up until {ends}",
        )
    waits: list[tuple[int, Limit]] = []
    tokens = sum(usage.tokens.values())
    if tokens > limits.tokens_per_minute:
        waits.append(
            (retry_after_ms(usage.tokens, tokens - limits.tokens_per_minute, now), Limit.TOKENS)
        )
    requests = sum(usage.requests.values())
    if requests > limits.requests_per_minute:
        excess = requests - limits.requests_per_minute
        waits.append((retry_after_ms(usage.requests, excess, now), Limit.REQUESTS))
    if not waits:
        return None
    wait, limit = max(waits)
    return Refusal(
        limit,
        wait,
        remaining,
        f"the app is over its {limit.value.replace('_', ' ')} limit "
        f"({getattr(limits, limit.value)}); retry in {math.ceil(wait / 1000)} s",
    )


def _changes(slot: int, period: str, tokens: int, requests: int) -> list[PatchOperation]:
    return [
        PatchOperation("incr", f"/t/{slot}", tokens),
        PatchOperation("incr", f"/r/{slot}", requests),
        PatchOperation("incr", f"/q/{period}", tokens),
    ]


def _floor(document: Mapping[str, Any]) -> int:
    """The oldest slot that may still be in the counters (the ones before it were pruned)."""
    return whole_count(document.get("floor", 0))


def _counts(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    counts = document.get(name)
    return counts if isinstance(counts, dict) else {}


def _check_count(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidReservation(f"{name} must be an integer from {low} to {high}")
