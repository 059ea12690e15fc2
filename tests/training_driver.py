"""For the tests of training on a cluster: a cluster's driver without this package, for the
training runner's `train` (a fresh `python -I`, neither the project nor PYTHONPATH on its path,
in a folder of its own, which loads `spark_runner.py` from its file and reads the payload and
the code as local files, as Spark reads them on a cluster); and the app's models, with their
files beside the lake, where the app keeps them and the cluster opens them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from embedded.documents.store import DocumentStore
from shared.models.artifacts import LocalArtifacts
from shared.models.registry import MODELS_CONTAINER, ModelRegistry
from shared.models.service import Models
from shared.models.training import ModelTraining
from shared.pipeline.lake import Lake

RUNNER = Path(__file__).resolve().parents[1] / "shared" / "batch" / "spark_runner.py"
_DRIVER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("spark_runner", sys.argv[1])
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)

def read(uri):
    with open(uri, "rb") as file:
        return file.read()

result = runner.train(json.loads(read(sys.argv[2])), read)
print(json.dumps({"result": result, "shared": sys.modules["shared"].__file__}))
"""


class DriverFailed(RuntimeError):
    """The runner failed on the driver: the message ends with its traceback."""


def train_on_driver(payload_uri: str, folder: Path, timeout_s: float = 120) -> dict[str, Any]:
    """The runner's answer for the payload (`result`) and where `shared` came from (`shared`)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-I", "-c", _DRIVER, str(RUNNER), payload_uri],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise DriverFailed(f"the runner failed ({done.returncode}): {done.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def models_beside(lake: Path, folder: Path) -> Models:
    """A registry of its own in `folder`, and the model files in `<lake>/models`, as
    `open_artifacts` keeps them for a local lake."""
    registry = ModelRegistry(
        DocumentStore(folder / "documents.sqlite3").container(MODELS_CONTAINER)
    )
    artifacts = LocalArtifacts(lake / "models")
    return Models(registry, artifacts, ModelTraining(Lake(str(lake)), registry, artifacts))
