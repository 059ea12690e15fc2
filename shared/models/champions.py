"""The models that serve: each model's `champion` version, and during a canary rollout its
`challenger` (`shared.models.deployment`), loaded once per process as onnxruntime sessions and
swapped when the registry changes, without making callers wait.

`ChampionCache.deployment(name)` answers at once with the loaded versions and the challenger's
share (None before the first load); `get(name)` with the champion alone. At most every
`refresh_s` (`MODEL_REFRESH_S`) the cache reads the registered model again, on a background
thread; a new version is loaded there, and the swap happens when it is ready. A load that fails
is logged and tried again at the next refresh: a champion that fails leaves the last one
serving, a challenger that fails leaves the champion serving everyone.
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

from shared.models.deployment import Deployment, Traffic
from shared.models.onnx_export import probabilities, session
from shared.models.registry import ModelNotFound, Registry
from shared.models.service import Models
from shared.models.training import CARD_FILE, ONNX_FILE

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
    deployment: Deployment[Champion] | None = None
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
        """The champion of `name` as loaded now (None before any is); see `deployment`."""
        deployment = self.deployment(name, wait_s)
        return None if deployment is None else deployment.champion

    def deployment(self, name: str, wait_s: float = 0.0) -> Deployment[Champion] | None:
        """The versions of `name` that serve, as loaded now (None before a champion is). With
        `wait_s`, a caller that finds none waits that long at most for a look at the registry
        in progress (HTTP serving and the ingest path wait for a process's first load; once a
        champion is loaded, or the registry has none, nobody waits)."""
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
        if slot.deployment is None and wait_s > 0:
            slot.looked.wait(wait_s)
        return slot.deployment

    def _refresh(self, name: str, slot: _Slot) -> None:
        try:
            traffic = _traffic(self._models.registry, name)
            if traffic.champion is None:
                slot.deployment = None
                return
            current = slot.deployment
            loaded = {} if current is None else _versions(current)
            champion = loaded.get(traffic.champion)
            if champion is None:
                champion = self._load(name, traffic.champion)
                log.info("model %s: champion version %d loaded", name, traffic.champion)
            challenger = None
            if traffic.challenger is not None:
                challenger = loaded.get(traffic.challenger)
                if challenger is None:
                    challenger = self._challenger(name, traffic.challenger)
            percent = traffic.percent if challenger is not None else 0
            slot.deployment = Deployment(name, champion, challenger, percent)
        except Exception as error:  # the last champion goes on serving; tried again later
            log.warning("model %s: the champion could not be loaded: %s", name, error)
        finally:
            with slot.lock:
                slot.loading = False
            slot.looked.set()

    def _load(self, name: str, version: int) -> Champion:
        return load_version(self._models, name, version, native=True)

    def _challenger(self, name: str, version: int) -> Champion | None:
        try:
            challenger = self._load(name, version)
        except Exception as error:  # the champion serves everyone; tried again later
            log.warning("model %s: challenger %d could not be loaded: %s", name, version, error)
            return None
        log.info("model %s: challenger version %d loaded", name, version)
        return challenger


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


def _traffic(registry: Registry, name: str) -> Traffic:
    try:
        return Traffic.of(registry.get_model(name))
    except ModelNotFound:
        return Traffic(None)


def _versions(deployment: Deployment[Champion]) -> dict[int, Champion]:
    loaded = {deployment.champion.version: deployment.champion}
    if deployment.challenger is not None:
        loaded[deployment.challenger.version] = deployment.challenger
    return loaded
