"""A model's monitoring run over the lake: its champion's reference, current and labelled
windows (`lake_windows`) into a `MonitoringReport`.

The classifiers are monitored (`MONITORABLE`: fraud, maintenance). Recommendations is not: it
ranks items for a user, with no score per event, no threshold and no label to measure against,
so none of the report's figures applies to it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from shared.models.champions import Champion, load_version
from shared.models.deployment import CHAMPION
from shared.models.registry import AliasNotFound, ModelNotFound, ModelVersion
from shared.models.service import Models
from shared.monitoring.lake_windows import (
    MONITORABLE,
    REFERENCE_ROWS,
    Monitorable,
    current_window,
    labelled_window,
    reference_window,
)
from shared.monitoring.monitor import Window, monitor
from shared.monitoring.monitored import monitored_model
from shared.monitoring.report import MonitoringReport
from shared.pipeline.lake import Lake

WINDOW = dt.timedelta(hours=1)
log = logging.getLogger(__name__)


class NotMonitored(LookupError):
    """No monitored model of that name."""


class BadWindow(ValueError):
    """A run's `now` without a time zone, or a window that is not positive."""


def monitorable(name: str) -> Monitorable:
    """The model's windows' recipe; NotMonitored for any other name."""
    spec = MONITORABLE.get(name)
    if spec is None:
        raise NotMonitored(
            f"{name[:64]!r} is not monitored: the monitored models are {', '.join(MONITORABLE)}"
            " (recommendations has no score per event, threshold or label to monitor)"
        )
    return spec


def label_maturity(version: ModelVersion, spec: Monitorable) -> dt.timedelta:
    """How long the version's training waited for labels (its `label_maturity_hours`), or the
    model's default for a version that did not record it."""
    recorded = version.params.get("label_maturity_hours", "")
    try:
        hours = float(recorded)
    except ValueError:
        return spec.maturity
    return dt.timedelta(hours=hours) if hours > 0 else spec.maturity


class LakeMonitor:
    """Monitoring runs over the lake with the registry's champions.

    The reference window of each model's champion is kept between runs (it is read from the
    version's pinned training data, which never changes, and costs a pass over the training
    history); a new champion replaces it. Runs may come from several threads: two first runs
    of one champion may both build it."""

    def __init__(self, lake: Lake, models: Models, *, reference_rows: int = REFERENCE_ROWS):
        self.lake = lake
        self.models = models
        self._reference_rows = reference_rows
        self._references: dict[str, tuple[int, Window]] = {}
        self._lock = threading.Lock()

    def run(
        self, name: str, now: dt.datetime, window: dt.timedelta = WINDOW
    ) -> MonitoringReport | None:
        """The champion of `name` over [now - window, now) against its training rows, with
        realised performance over the last `window` whose labels matured by `now`; None when
        the model has no champion. NotMonitored, BadWindow; MissingData when a table it reads
        does not exist."""
        spec = monitorable(name)
        if now.tzinfo is None or window <= dt.timedelta(0):
            raise BadWindow("a run needs a time-zone-aware `now` and a positive window")
        version = self._champion(name)
        if version is None:
            log.info("model %s: no champion, nothing to monitor (train it first)", name)
            return None
        champion = load_version(self.models, name, version.version)
        maturity = label_maturity(version, spec)
        model = monitored_model(
            name,
            spec.features,
            champion.threshold,
            expected_pr_auc=version.metrics.get("pr_auc"),
            version=version.version,
        )
        reference = self._reference(spec, champion, version, maturity)
        current = current_window(self.lake, spec, champion, now - window, now)
        labelled = labelled_window(self.lake, spec, champion, maturity, now, window)
        report = monitor(model, reference, current, labelled)
        log.info(
            "model %s version %d over %s: %s, %d of %d features drift",
            name,
            version.version,
            window,
            report.action,
            report.drifting_features,
            len(report.features),
        )
        return report

    def _champion(self, name: str) -> ModelVersion | None:
        try:
            return self.models.registry.get_version_by_alias(name, CHAMPION)
        except (AliasNotFound, ModelNotFound):
            return None

    def _reference(
        self, spec: Monitorable, champion: Champion, version: ModelVersion, maturity: dt.timedelta
    ) -> Window:
        with self._lock:
            kept = self._references.get(champion.name)
        if kept is not None and kept[0] == champion.version:
            return kept[1]
        reference = reference_window(
            self.lake,
            spec,
            champion,
            dict(version.training_data),
            maturity,
            self._reference_rows,
        )
        with self._lock:
            self._references[champion.name] = (champion.version, reference)
        return reference


def monitor_lake(
    lake: Lake, models: Models, name: str, now: dt.datetime, window: dt.timedelta = WINDOW
) -> MonitoringReport | None:
    """One run of `LakeMonitor.run`, its reference window read afresh."""
    return LakeMonitor(lake, models).run(name, now, window)
