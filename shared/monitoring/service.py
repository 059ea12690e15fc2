"""Monitoring as the platform runs it: one `LakeMonitor` per process (it keeps each champion's
reference window between runs) and the history in gold/model_monitoring."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.monitoring.history import MonitoringHistory
from shared.monitoring.lake_monitor import LakeMonitor
from shared.monitoring.report import MonitoringReport


@dataclass
class Monitoring:
    monitor: LakeMonitor
    history: MonitoringHistory

    def run(self, name: str, now: dt.datetime, trigger: str) -> MonitoringReport | None:
        """Monitor `name` over the hour before `now` and keep the report; None when the model
        has no champion (nothing is kept)."""
        report = self.monitor.run(name, now)
        if report is not None:
            self.history.append(report, now, trigger)
        return report
