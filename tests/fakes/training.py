"""An in-memory Spark engine that also trains: runs stay where the test puts them, and every
submitted training job is kept."""

from __future__ import annotations

from shared.batch.engine import RunState, RunStatus, TrainingJob
from tests.fakes.scoring import FakeScoringEngine


class FakeTrainingEngine(FakeScoringEngine):
    """Implements the TrainingEngine port beside the ScoringEngine one. A submitted training is
    PENDING until `finish` moves it; one run per idempotency key, as the real adapters promise."""

    def __init__(self, name: str = "fake-spark") -> None:
        super().__init__(name)
        self.trainings: list[TrainingJob] = []

    def submit_training(self, job: TrainingJob) -> RunState:
        self.trainings.append(job)
        key = job.idempotency_key()
        if key not in self._keys:
            self._keys[key] = run_id = f"run-{next(self._ids)}"
            self.runs[run_id] = RunState(self.name, run_id, RunStatus.PENDING)
        return self.runs[self._keys[key]]
