"""A training on a real local Spark, as a cluster runs it: `spark_runner.py train:<payload URI>`
as a script, in a fresh `python -I` without this package on its path, reads the payload and the
app's code through Spark, trains on the driver, and writes the run's files and result beside the
payload; the app then registers the version, with the figures local training gives."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.batch.engine import RunStatus
from shared.config import Adapter, LakeSettings
from shared.models.remote_training import FinishTraining, SparkTraining
from shared.models.training import TrainingRequest
from tests.fakes.training import FakeTrainingEngine
from tests.modeldata import land_history, refresh
from tests.training_driver import RUNNER, models_beside

pytest.importorskip("pyspark")
pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
LOCAL_SPARK = (
    "--master local[1] --conf spark.ui.enabled=false "
    "--conf spark.driver.bindAddress=127.0.0.1 pyspark-shell"
)
RECORD = ("metrics", "params", "signature", "input_example", "training_data", "code_version")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark-training") / "lake"
    land_history(root, days=2, rate=0.1, seed=5, label_delay_scale=0.2, fraud_rate=0.08, end=NOW)
    refresh(root)
    return root


def test_the_runner_trains_on_spark_what_its_argument_names(lake: Path, tmp_path: Path) -> None:
    models = models_beside(lake, tmp_path / "registry")
    engine = FakeTrainingEngine()
    remote = SparkTraining(models, LakeSettings(str(lake), Adapter.LOCAL), engine)
    request = TrainingRequest("fraud", "retrain:fraud:spark", label_maturity_hours=30.0)
    submission = remote.submit(request)
    [job] = engine.trainings
    environment = {**os.environ, "PYSPARK_SUBMIT_ARGS": LOCAL_SPARK, "SPARK_LOCAL_IP": "127.0.0.1"}

    done = subprocess.run(
        [sys.executable, "-I", str(RUNNER), job.argument],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "[fraud] training run retrain:fraud:spark" in lines
    summary = json.loads(lines[-1])["training"]
    assert (summary["model"], summary["run_id"], summary["error"]) == (
        "fraud",
        "retrain-fraud-spark",
        "",
    )
    engine.finish(submission.remote.run_id, RunStatus.SUCCEEDED)
    version = remote.finish(FinishTraining(submission, engine.state(submission.remote.run_id)))
    local = models_beside(lake, tmp_path / "local").training.train(
        TrainingRequest("fraud", "local", label_maturity_hours=30.0)
    )
    assert (version.version, version.run_id) == (1, "retrain-fraud-spark")
    assert version.metrics == summary["metrics"]
    assert {f: getattr(version, f) for f in RECORD} == {f: getattr(local, f) for f in RECORD}
    assert models.registry.get_model("fraud").aliases == {"champion": 1}
