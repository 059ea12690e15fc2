"""A trained model as the registry records it: its files, metrics and signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainedModel:
    """What a trainer hands the registry: the ONNX graph (checked against the native model),
    the native model's file, the metrics on the time-based holdout, the parameters, the
    signature (inputs and outputs), an input example, and the files to keep beside it."""

    name: str
    onnx: bytes
    native: bytes
    native_file: str
    metrics: dict[str, float]
    params: dict[str, str]
    signature: dict[str, Any]
    input_example: Any
    card: dict[str, Any] = field(default_factory=dict)  # what serving needs beyond the graph
