"""What each served version did, ten seconds at a time: rows scored, rows a model failed on,
the time to score one record, and a sample of the scores, shared by every serving process
through the document store so that a canary's check compares champion and challenger on the
same traffic.

- The stream and HTTP serving call `record(...)` once per model and batch: a lock and a few
  numpy operations, nothing written. Scores and times are kept as uniform samples (reservoirs
  of `SAMPLE` values per version and slot), so a busy slot costs what a quiet one does.
- The time is that of one record (`probe_due` says when to time one, every `PROBE_S` per
  version): a batch's time per row would favour the version with the larger batches, which
  the champion's share always gives it.
- A background thread writes the slots that changed every `flush_s` seconds: one document
  per (model, version, slot, process) in `model_serving_stats`, upserted whole, so a flush
  repeated after a failure changes nothing. Documents expire after `TTL_S`. A crash loses at
  most the last `flush_s` seconds of figures, which a check over a step's slots does not notice.
- A document holds counts, times and scores only: no entity, event or feature value.
- `observed(...)` merges the documents of a version over the slots that start within a time
  range, for the check (slots that began before the step held traffic from before it).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shared.documents.port import Condition, ContainerSpec, DocumentContainer, Query

TTL_S = 7 * 24 * 3600
SERVING_STATS = ContainerSpec("model_serving_stats", "/model", default_ttl=TTL_S)
SAMPLE = 1_000  # scores and row times kept per version, slot and process
FLUSH_S = 5.0
SLOT_S = 10
PROBE_S = 0.2
log = logging.getLogger(__name__)


def minute_of(moment: dt.datetime) -> str:
    """The slot a moment falls in (its start), as the documents name it (text order is time
    order)."""
    utc = moment.astimezone(dt.UTC)
    start = utc.replace(second=utc.second - utc.second % SLOT_S, microsecond=0)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def first_slot(moment: dt.datetime) -> str:
    """The first slot that starts at or after `moment`."""
    utc = moment.astimezone(dt.UTC)
    if utc.second % SLOT_S == 0 and utc.microsecond == 0:
        return minute_of(utc)
    return minute_of(utc + dt.timedelta(seconds=SLOT_S))


class _Reservoir:
    """A uniform sample of at most SAMPLE of the values offered (algorithm R, vectorised)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.values = np.empty(0, dtype=np.float64)
        self.seen = 0
        self._rng = rng

    def offer(self, values: np.ndarray) -> None:
        room = SAMPLE - self.values.size
        if room > 0:
            self.values = np.concatenate([self.values, values[:room]])
            self.seen += min(room, values.size)
            values = values[room:]
        if values.size == 0:
            return
        # The i-th further value replaces a random slot with probability SAMPLE / (seen + i + 1).
        slots = self._rng.integers(0, self.seen + np.arange(1, values.size + 1))
        kept = slots < SAMPLE
        self.values[slots[kept]] = values[kept]
        self.seen += values.size


@dataclass
class _Minute:
    rows: int = 0
    errors: int = 0
    latency: _Reservoir | None = None
    scores: _Reservoir | None = None


@dataclass(frozen=True)
class Observed:
    """A version's figures over a time range, merged across processes."""

    rows: int = 0
    errors: int = 0
    latency_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    scores: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def error_rate(self) -> float:
        total = self.rows + self.errors
        return self.errors / total if total else 0.0

    @property
    def p99_ms(self) -> float | None:
        return float(np.percentile(self.latency_ms, 99)) if self.latency_ms.size else None


class ServingStats:
    """The figures of one process; None as the container keeps them in memory only (tests)."""

    def __init__(
        self,
        container: DocumentContainer | None,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        flush_s: float = FLUSH_S,
        process: str | None = None,
    ) -> None:
        self.container = container
        self.process = process or uuid.uuid4().hex[:12]
        self._clock = clock
        self._flush_s = flush_s
        self._minutes: dict[tuple[str, int, str], _Minute] = {}
        self._dirty: set[tuple[str, int, str]] = set()
        self._lock = threading.Lock()
        self._rng = np.random.default_rng()
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._probed: dict[tuple[str, int], float] = {}

    def probe_due(self, model: str, version: int) -> bool:
        """Whether to time one record of this version now (every `PROBE_S` at most)."""
        now = time.monotonic()
        key = (model, version)
        if now - self._probed.get(key, -1e9) < PROBE_S:
            return False
        self._probed[key] = now
        return True

    def record(
        self,
        model: str,
        version: int,
        *,
        rows: int,
        errors: int = 0,
        probe_s: float | None = None,
        scores: Sequence[float] | np.ndarray = (),
    ) -> None:
        """One model call: `rows` scored (or `errors` rows it failed on), and the time one
        record took when it was timed."""
        key = (model, version, minute_of(self._clock()))
        values = np.asarray(scores, dtype=np.float64)
        with self._lock:
            found = self._minutes.get(key)
            if found is None:
                found = self._minutes[key] = _Minute(
                    latency=_Reservoir(self._rng), scores=_Reservoir(self._rng)
                )
                self._forget_old(key[2])
            found.rows += rows
            found.errors += errors
            assert found.latency is not None and found.scores is not None
            if probe_s is not None:
                found.latency.offer(np.asarray([probe_s * 1000.0]))
            if rows:
                found.scores.offer(values)
            self._dirty.add(key)
        if self.container is not None and self._flusher is None:
            self._start()

    def flush(self) -> int:
        """Write the minutes changed since the last flush; how many documents were written."""
        if self.container is None:
            return 0
        with self._lock:
            keys, self._dirty = self._dirty, set()
            documents = [self._document(key, self._minutes[key]) for key in keys]
        try:
            self.container.upsert_many(documents)
        except Exception:
            with self._lock:  # written again at the next flush
                self._dirty |= keys
            raise
        return len(documents)

    def observed(self, model: str, version: int) -> Observed:
        """This process's figures of a version, every minute it remembers (tests, local)."""
        with self._lock:
            found = [
                m for (name, v, _), m in self._minutes.items() if (name, v) == (model, version)
            ]
            return _merge(
                [(m.rows, m.errors, _values(m.latency), _values(m.scores)) for m in found]
            )

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=self._flush_s + 1)
        try:
            self.flush()
        except Exception as error:
            log.warning("serving figures not written at close: %s", error)

    def _start(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(target=self._run, name="serving-stats", daemon=True)
        self._flusher.start()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_s):
            try:
                self.flush()
            except Exception as error:  # figures only: serving goes on; written next time
                log.warning("serving figures not written: %s", error)

    def _forget_old(self, now: str) -> None:
        """Drop flushed minutes other than the current one (they are in the store)."""
        for key in [k for k in self._minutes if k[2] != now and k not in self._dirty]:
            del self._minutes[key]

    def _document(self, key: tuple[str, int, str], minute: _Minute) -> dict[str, object]:
        model, version, stamp = key
        return {
            "id": f"{model}:{version}:{stamp}:{self.process}",
            "model": model,
            "version": version,
            "minute": stamp,
            "process": self.process,
            "rows": minute.rows,
            "errors": minute.errors,
            "latency_ms": [round(float(v), 6) for v in _values(minute.latency)],
            "scores": [round(float(v), 6) for v in _values(minute.scores)],
        }


def _values(reservoir: _Reservoir | None) -> np.ndarray:
    return np.empty(0) if reservoir is None else reservoir.values


def observed(
    container: DocumentContainer, model: str, version: int, since: dt.datetime, until: dt.datetime
) -> Observed:
    """A version's figures over the slots that start from `since` to before `until`, merged
    across processes."""
    query = Query(
        where=(
            Condition("/version", "=", version),
            Condition("/minute", ">=", first_slot(since)),
            Condition("/minute", "<", minute_of(until)),
        ),
        partition_key=model,
        page_size=1000,
    )
    parts = []
    continuation = None
    while True:
        page = container.query(query, continuation)
        for document in page.documents:
            parts.append(
                (
                    _count(document.get("rows")),
                    _count(document.get("errors")),
                    _floats(document.get("latency_ms")),
                    _floats(document.get("scores")),
                )
            )
        continuation = page.continuation
        if continuation is None:
            return _merge(parts)


def _merge(parts: list[tuple[int, int, np.ndarray, np.ndarray]]) -> Observed:
    if not parts:
        return Observed()
    return Observed(
        rows=sum(p[0] for p in parts),
        errors=sum(p[1] for p in parts),
        latency_ms=np.concatenate([p[2] for p in parts]),
        scores=np.concatenate([p[3] for p in parts]),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _floats(value: object) -> np.ndarray:
    if not isinstance(value, list):
        return np.empty(0)
    kept = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
    array = np.asarray(kept, dtype=np.float64)
    return array[np.isfinite(array)]
