"""What the MLflow adapter uses of the `mlflow` client (mlflow-skinny), imported here only, after
two of MLflow's settings get the platform's defaults: from its import on, the client sends usage
data to MLflow's servers unless `MLFLOW_DISABLE_TELEMETRY` is true, and it prints a link to
each run it ends on stdout (for notebooks) unless `MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT` is.
The platform does neither by default; an app setting of either to `false` turns it back on."""

# ruff: noqa: E402 - the setting must come before the import
from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, Run, RunTag
from mlflow.entities.model_registry import ModelVersion as MlflowVersion
from mlflow.entities.model_registry import RegisteredModel as MlflowModel
from mlflow.exceptions import MlflowException

__all__ = [
    "Dataset",
    "DatasetInput",
    "InputTag",
    "Metric",
    "MlflowClient",
    "MlflowException",
    "MlflowModel",
    "MlflowVersion",
    "Param",
    "Run",
    "RunTag",
]
