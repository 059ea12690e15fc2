"""Models as ONNX graphs, checked against the native model before they count.

- A LightGBM booster becomes a TreeEnsembleClassifier graph (onnxmltools, no ZipMap): input
  `features` float32 [N, F], outputs `label` and `probabilities` [N, 2]. Its metadata says
  what the file alone cannot: `features`, the input's columns in order (a JSON list, the
  booster's feature names), and `threshold` (the decision's, when given), so that a device
  can score with the downloaded file and onnxruntime only (`edge/score_telemetry.py`).
- An item co-occurrence model becomes one MatMul: input `history` float32 [N, items] (the
  user's recent items, weighted), output `scores` [N, items].

`checked(...)` runs the graph in onnxruntime beside the native prediction and refuses the
export (`ExportMismatch`) when any score differs by more than `TOLERANCE`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnxruntime as ort

TOLERANCE = 1e-5
OPSET = 15  # the newest onnxmltools' LightGBM converter writes
FEATURES_INPUT = "features"
PROBABILITIES = "probabilities"
HISTORY_INPUT = "history"
SCORES = "scores"
FEATURES_METADATA = "features"  # the metadata_props keys that edge/score_telemetry.py reads
THRESHOLD_METADATA = "threshold"


class ExportMismatch(ValueError):
    """The ONNX graph does not predict what the native model predicts."""


def session(model: bytes) -> ort.InferenceSession:
    """An onnxruntime session for serving: one thread per call (the host runs many at once),
    warnings off (the converters' declared label shape is [1]; only probabilities are read)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def lightgbm_to_onnx(booster: Any, feature_count: int, threshold: float | None = None) -> bytes:
    """The booster's graph, its feature names (and `threshold`, if given) in its metadata."""
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    graph = convert_lightgbm(
        booster,
        initial_types=[(FEATURES_INPUT, FloatTensorType([None, feature_count]))],
        zipmap=False,
        target_opset=OPSET,
    )
    names = [str(name) for name in booster.feature_name()]
    graph.metadata_props.add(key=FEATURES_METADATA, value=json.dumps(names))
    if threshold is not None:
        graph.metadata_props.add(key=THRESHOLD_METADATA, value=repr(float(threshold)))
    return bytes(graph.SerializeToString())


def probabilities(model: ort.InferenceSession, features: np.ndarray) -> np.ndarray:
    """The positive class's probability for each row."""
    output = model.run([PROBABILITIES], {FEATURES_INPUT: features.astype(np.float32)})[0]
    return np.asarray(output)[:, 1]


def cooccurrence_to_onnx(similarity: np.ndarray) -> bytes:
    import onnx  # for training only: a second's import that serving never pays
    from onnx import TensorProto, helper, numpy_helper

    items = similarity.shape[0]
    weights = numpy_helper.from_array(similarity.astype(np.float32), name="similarity")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [HISTORY_INPUT, "similarity"], [SCORES])],
        "cooccurrence",
        [helper.make_tensor_value_info(HISTORY_INPUT, TensorProto.FLOAT, [None, items])],
        [helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, [None, items])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def scores(model: ort.InferenceSession, history: np.ndarray) -> np.ndarray:
    return np.asarray(model.run([SCORES], {HISTORY_INPUT: history.astype(np.float32)})[0])


def check_close(native: np.ndarray, exported: np.ndarray, what: str) -> float:
    """The largest difference; ExportMismatch past `TOLERANCE`."""
    if native.shape != exported.shape:
        raise ExportMismatch(f"{what}: shapes {native.shape} and {exported.shape} differ")
    worst = float(np.max(np.abs(native - exported))) if native.size else 0.0
    if not worst <= TOLERANCE:
        raise ExportMismatch(f"{what}: the ONNX graph differs by {worst:.2e} (> {TOLERANCE})")
    return worst
