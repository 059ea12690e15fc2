"""Model files in MLflow when MLflow is the registry: `<name>/runs/<run id>/<file>` is the file
`<file>` of the run of that platform run id in the model's experiment, so training's ONNX
graph, native model and card are the run's artifacts, and serving reads them from there.

Other paths (batch scoring's job payloads, which a Spark cluster reads beside the lake) stay
in the lake's store. A file is written once: a path that holds one already is refused
(`ArtifactExists`), checked by listing the run's folder first (MLflow's artifact stores have
no create-if-absent, so two writers racing for one path could both write; training writes
each run's files from one activity)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from shared.models.artifacts import (
    ArtifactError,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactStore,
)
from shared.models.mlflow_runs import MlflowRuns, mlflow_errors

_RUN_PATH = re.compile(r"(?P<model>[^/]+)/runs/(?P<run>[^/]+)(?:/(?P<file>.+))?", re.DOTALL)
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # as training names a run's folder


class MlflowArtifacts:
    """An `ArtifactStore` whose run files are MLflow run artifacts, the rest in `lake`."""

    def __init__(self, runs: MlflowRuns, lake: ArtifactStore) -> None:
        self.runs = runs
        self.client = runs.client
        self.lake = lake

    def put(self, path: str, data: bytes) -> str:
        located = _run_path(path)
        if located is None:
            return self.lake.put(path, data)
        model, run_id, file = located
        if not file:
            raise ArtifactError(f"{path} names a run, not a file")
        run = self.runs.files_run(model, run_id)
        folder, _, base = file.rpartition("/")
        target = run.info.run_id
        with mlflow_errors(lambda: ArtifactNotFound(f"MLflow lost the run of {path}")):
            listed = self.client.list_artifacts(target, folder or None)
            if any(entry.path == file for entry in listed):
                raise ArtifactExists(f"{path} exists")
            with tempfile.TemporaryDirectory(prefix="mlflow-") as staging:
                local = Path(staging) / base
                local.write_bytes(data)
                self.client.log_artifact(target, str(local), folder or None)
        return self.uri(path)

    def get(self, path: str) -> bytes:
        located = _run_path(path)
        if located is None:
            return self.lake.get(path)
        model, run_id, file = located
        run = self.runs.first_run(model, run_id)
        if run is None or not file:
            raise ArtifactNotFound(path)
        with (
            tempfile.TemporaryDirectory(prefix="mlflow-") as folder,
            mlflow_errors(lambda: ArtifactNotFound(path)),
        ):
            try:
                local = self.client.download_artifacts(run.info.run_id, file, folder)
                return Path(local).read_bytes()
            except (FileNotFoundError, IsADirectoryError):  # a run whose artifacts are files
                raise ArtifactNotFound(path) from None

    def uri(self, path: str) -> str:
        """The file's (or the run's folder's) artifact URI in MLflow, which the version's
        `source` names; a run that does not exist yet has none (ArtifactNotFound)."""
        located = _run_path(path)
        if located is None:
            return self.lake.uri(path)
        model, run_id, file = located
        run = self.runs.first_run(model, run_id)
        if run is None:
            raise ArtifactNotFound(f"no MLflow run {run_id[:80]!r} of {model[:64]!r}")
        root = str(run.info.artifact_uri).rstrip("/")
        return f"{root}/{file}" if file else root


def _run_path(path: str) -> tuple[str, str, str] | None:
    """(model, run id, file) of a run's path, its segments checked (no `..`, no empty or
    odd segment); None for a path that is not a run's."""
    found = _RUN_PATH.fullmatch(path)
    if found is None:
        return None
    file = found["file"] or ""
    segments = [found["model"], found["run"], *(file.split("/") if file else [])]
    for segment in segments:
        if not _SEGMENT.fullmatch(segment) or ".." in segment or segment == ".":
            raise ArtifactError(f"not a valid artifact path segment: {segment[:80]!r}")
    return found["model"], found["run"], file
