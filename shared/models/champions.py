"""The models that serve: each model's `champion` version, loaded once per process as an
onnxruntime session and swapped when the alias moves, without making callers wait.

`ChampionCache.get(name)` answers at once with the loaded champion (None before the first
load). At most every `refresh_s` (`MODEL_REFRESH_S`) it looks at the alias again, on a
background thread; a new version is loaded there, and the swap happens when it is ready. A
load that fails is logged and tried again at the next refresh; the version that served goes
on serving.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from shared.models.onnx_export import probabilities, session
from shared.models.registry import AliasNotFound, ModelNotFound, Registry
from shared.models.service import Models
from shared.models.training import CARD_FILE, CHAMPION, ONNX_FILE

REFRESH_S = 30.0  # the default of MODEL_REFRESH_S
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Champion:
    """A loaded version: its session, the card (threshold, features or items) and version."""

    name: str
    version: int
    model: ort.InferenceSession
    card: dict[str, Any]
    native: Any = None  # the LightGBM booster, for the contributions of alerting rows

    def contributions(self, features: np.ndarray) -> np.ndarray | None:
        """Each feature's TreeSHAP contribution to each row's score (log-odds), or None for
        a model without its native booster."""
        if self.native is None:
            return None
        # One thread, as the ONNX session has: OpenMP's threads only contend with the host's
        # for a batch's few alerting rows.
        contributions = self.native.predict(features, pred_contrib=True, num_threads=1)
        return np.asarray(contributions)[:, :-1]

    @property
    def threshold(self) -> float:
        return float(self.card.get("threshold", 0.5))

    @property
    def features(self) -> list[str]:
        return [str(name) for name in self.card.get("features", [])]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return probabilities(self.model, features)


@dataclass
class _Slot:
    champion: Champion | None = None
    checked_at: float = -1e18
    loading: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    looked: threading.Event = field(default_factory=threading.Event)  # set after each look


class ChampionCache:
    def __init__(
        self,
        models: Models,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._models = models
        self._refresh_s = refresh_s
        self._clock = clock
        self._background = background
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def get(self, name: str, wait_s: float = 0.0) -> Champion | None:
        """The champion of `name` as loaded now (None before any is). With `wait_s`, a caller
        that finds none waits that long at most for a look at the registry in progress (HTTP
        serving and the ingest path wait for a process's first load; once a champion is
        loaded, or the registry has none, nobody waits)."""
        with self._lock:
            slot = self._slots.setdefault(name, _Slot())
        refresh = False
        with slot.lock:
            if not slot.loading and self._clock() - slot.checked_at >= self._refresh_s:
                slot.loading, slot.checked_at, refresh = True, self._clock(), True
                slot.looked.clear()
        if refresh:
            if self._background:
                threading.Thread(target=self._refresh, args=(name, slot), daemon=True).start()
            else:
                self._refresh(name, slot)
        if slot.champion is None and wait_s > 0:
            slot.looked.wait(wait_s)
        return slot.champion

    def _refresh(self, name: str, slot: _Slot) -> None:
        try:
            version = _champion_version(self._models.registry, name)
            current = slot.champion
            if version is None:
                slot.champion = None
            elif current is None or current.version != version:
                slot.champion = self._load(name, version)
                log.info("model %s: champion version %d loaded", name, version)
        except Exception as error:  # the last champion goes on serving; tried again later
            log.warning("model %s: the champion could not be loaded: %s", name, error)
        finally:
            with slot.lock:
                slot.loading = False
            slot.looked.set()

    def _load(self, name: str, version: int) -> Champion:
        return load_version(self._models, name, version, native=True)


def load_version(models: Models, name: str, version: int, *, native: bool = False) -> Champion:
    """A version as serving loads it: its ONNX session and card, and with `native` its
    LightGBM booster (for the contributions of alerting rows) when it has one."""
    found = models.registry.get_version(name, version)
    folder = f"{name}/runs/{found.run_id}"
    graph = models.artifacts.get(f"{folder}/{ONNX_FILE}")
    card = json.loads(models.artifacts.get(f"{folder}/{CARD_FILE}"))
    booster = None
    if native and found.tags.get("native", "").endswith(".lgb.txt"):
        import lightgbm

        text = models.artifacts.get(f"{folder}/{found.tags['native']}").decode()
        booster = lightgbm.Booster(model_str=text)
    return Champion(name, version, session(graph), card, booster)


def _champion_version(registry: Registry, name: str) -> int | None:
    try:
        return registry.get_version_by_alias(name, CHAMPION).version
    except (AliasNotFound, ModelNotFound):
        return None
