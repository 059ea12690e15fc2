"""How every benchmark reports: one JSON object per figure on stdout, progress on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any


class Report:
    """The output of one benchmark; `digits` rounds the figures' values."""

    def __init__(self, benchmark: str, digits: int) -> None:
        self.benchmark = benchmark
        self.digits = digits

    def emit(self, metric: str, value: float, unit: str, **extra: Any) -> None:
        """`{"benchmark", "metric", "value", "unit", ...}`: a figure, with its baseline or goal."""
        record = {
            "benchmark": self.benchmark,
            "metric": metric,
            "value": round(value, self.digits),
            "unit": unit,
        }
        print(json.dumps({**record, **extra}), flush=True)

    def progress(self, message: str) -> None:
        print(f"[{self.benchmark}] {message}", file=sys.stderr, flush=True)
