"""The medallion pipeline's operations as its activities call them, typed payloads in and out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shared.batch.engine import BatchEngine, RunState
from shared.batch.factory import build_engine
from shared.config import Settings
from shared.documents.port import DocumentDatabase
from shared.lakehouse.access import LakeAccess
from shared.pipeline.gold import GoldRunner, GoldSubmission
from shared.pipeline.lake import Lake
from shared.pipeline.maintenance import (
    MaintenanceResult,
    MaintenanceTarget,
    maintain,
    maintenance_targets,
)
from shared.pipeline.payloads import RunPlan
from shared.pipeline.run_ledger import (
    DocumentRunLedger,
    RemoteRun,
    RunLedger,
    RunOwner,
    settle,
)
from shared.pipeline.silver import SilverBuilder, SilverOutcome
from shared.pipeline.specs import SILVER_SPECS, SilverSpec
from shared.pipeline.state import DocumentStateStore, PipelineStateStore

PIPELINE = "medallion"


class UnknownTable(LookupError):
    """No silver table or gold model by that name."""


@dataclass(frozen=True)
class MedallionPipeline:
    """Silver builds, gold submissions and maintenance over one lake, one state store and one
    batch engine; built once per process by `shared.bootstrap`, or by tests with their own
    parts."""

    lake: Lake
    state: PipelineStateStore
    engine: BatchEngine
    silver: SilverBuilder
    gold: GoldRunner
    vacuum_retention_hours: int = 168
    poll_first_s: float = 5.0
    poll_max_s: float = 60.0
    run_timeout_s: float = 3600.0
    specs: Mapping[str, SilverSpec] = field(default_factory=lambda: dict(SILVER_SPECS))
    # Remote runs still going are recorded here so the reaper can cancel orphans; None: untracked.
    runs: RunLedger | None = None
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def build(
        cls,
        lake: Lake,
        state: PipelineStateStore,
        engine: BatchEngine,
        *,
        vacuum_retention_hours: int = 168,
        chunk_rows: int = 250_000,
        poll: tuple[float, float, float] = (5.0, 60.0, 3600.0),
        runs: RunLedger | None = None,
    ) -> MedallionPipeline:
        return cls(
            lake=lake,
            state=state,
            engine=engine,
            silver=SilverBuilder(lake, state, pipeline=PIPELINE, chunk_rows=chunk_rows),
            gold=GoldRunner(lake, state, engine, pipeline=PIPELINE),
            vacuum_retention_hours=vacuum_retention_hours,
            poll_first_s=poll[0],
            poll_max_s=poll[1],
            run_timeout_s=poll[2],
            runs=runs,
        )

    def plan(self) -> dict[str, list[str]]:
        """The silver tables and gold models a run goes through, in order."""
        return {"silver": sorted(self.specs), "gold": sorted(self.gold.models)}

    def run_plan(self) -> RunPlan:
        """What a run does, as its orchestrator needs it: tables, models, what each model
        reads from silver, and how to watch a remote run."""
        reads = {
            name: sorted(t.split(".", 1)[1] for t in model.inputs if t.startswith("silver."))
            for name, model in self.gold.models.items()
        }
        plan = self.plan()
        return RunPlan(
            silver=plan["silver"],
            gold=plan["gold"],
            reads=reads,
            engine=self.engine.name,
            poll_first_s=self.poll_first_s,
            poll_max_s=self.poll_max_s,
            run_timeout_s=self.run_timeout_s,
        )

    def build_silver(self, table: str, run_id: str) -> SilverOutcome:
        spec = self.specs.get(table)
        if spec is None:
            raise UnknownTable(f"no silver table {table!r}")
        return self.silver.build(spec, run_id)

    def submit_gold(
        self, model: str, run_key: str, owner: RunOwner | None = None
    ) -> GoldSubmission:
        """Submit the model; a run still going is recorded in the ledger under its `owner`."""
        if model not in self.gold.models:
            raise UnknownTable(f"no gold model {model!r}")
        submission = self.gold.submit(model, run_key)
        run = submission.run
        if run is not None and not run.status.terminal and self.runs is not None and owner:
            self.runs.record(RemoteRun.submitted(run, model, owner, self.clock()))
        return submission

    def gold_state(self, run_id: str) -> RunState:
        return self._seen(self.gold.state(run_id))

    def cancel_gold(self, run_id: str) -> RunState:
        return self._seen(self.gold.cancel(run_id))

    def _seen(self, state: RunState) -> RunState:
        """Close the run's ledger entry once its monitor sees it end."""
        if state.status.terminal and self.runs is not None:
            settle(self.runs, state, by="monitor", note=state.message, now=self.clock())
        return state

    def finish_gold(self, submission: GoldSubmission, final: RunState) -> None:
        self.gold.record_success(submission, final)

    def maintenance_plan(self) -> list[MaintenanceTarget]:
        silver = {table: spec.zorder for table, spec in self.specs.items()}
        gold = {name: model.keys for name, model in self.gold.models.items()}
        return maintenance_targets(silver, gold)

    def maintain(self, target: MaintenanceTarget) -> MaintenanceResult:
        return maintain(self.lake, target, self.vacuum_retention_hours)


def build_pipeline(
    settings: Settings, access: LakeAccess, documents: DocumentDatabase
) -> MedallionPipeline:
    """The pipeline for these settings: the lake (through `access`, as ingestion reaches it:
    Azurite or an Entra ID token on `abfss://`), its state and run ledger as documents (Cosmos
    DB, or the embedded store), and the batch engine."""
    state = DocumentStateStore.open(documents)
    batch = settings.batch
    return MedallionPipeline.build(
        Lake(settings.lake.uri, access=access),
        state,
        build_engine(settings),
        vacuum_retention_hours=settings.batch.vacuum_retention_hours,
        poll=(batch.poll_first_s, batch.poll_max_s, batch.run_timeout_s),
        runs=DocumentRunLedger.open(documents),
    )
