"""The composition root: `bootstrap(settings)` builds every service of the platform, once per
process, choosing each port's adapter from settings. Nothing else builds services.

Triggers reach the platform through `current_platform()`, which bootstraps it from the
environment on first use. Services whose clients must not be built at import (the batch
engine's Databricks or Synapse client, the run reaper over it, the Cosmos DB client, which
reads the account as it starts) are built on first use, once.

Tests install a platform of their own with `install_platform(bootstrap(settings))` (or one
with fakes), and `install_platform(None)` afterwards, which makes the next use bootstrap again;
`tests/conftest.py` wraps this in fixtures.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from embedded.audit.checkpoints import checkpoints_path
from shared import __version__
from shared.ai.ask import AskService
from shared.ai.gateway import AiGateway
from shared.ai.knowledge.answers import AnswerService
from shared.ai.services import (
    AiStores,
    GatewayKeys,
    build_answers,
    build_ask,
    build_gateway,
    open_ai_stores,
)
from shared.audit.checkpoints import CheckpointStore, FileCheckpoints
from shared.audit.trail import AUDIT_CONTAINER, DocumentAuditTrail
from shared.config import Adapter, Settings, load_settings
from shared.documents.build import open_documents
from shared.documents.port import DocumentDatabase
from shared.events.pseudonymize import Pseudonymizer
from shared.events.publisher import EventPublisher
from shared.events.services import EventServices, build_event_services
from shared.events.sync_publisher import sync_publisher
from shared.features.online import FEATURES_CONTAINER, OnlineFeatures
from shared.health import ReadinessProbe, RecentHealth
from shared.identity.authenticator import Authenticator
from shared.lakehouse.access import LakeAccess, lake_access
from shared.lakehouse.lake_lock import hold_local_lake
from shared.lakehouse.storage import AdlsLakeProbe, LocalLakeProbe
from shared.models.alerts import ALERTS_CONTAINER, AlertBook
from shared.models.artifacts import ArtifactStore, open_artifacts
from shared.models.batch_scoring import BatchScoring
from shared.models.champions import ChampionCache
from shared.models.registry import MODELS_CONTAINER, ModelRegistry, Registry
from shared.models.remote_scoring import SparkScoring, spark_scoring
from shared.models.remote_training import SparkTraining, spark_training
from shared.models.service import Models
from shared.models.serving import Serving
from shared.models.serving_stats import SERVING_STATS, ServingStats
from shared.models.stream import StreamScorer
from shared.models.training import ModelTraining
from shared.monitoring.history import MonitoringHistory
from shared.monitoring.lake_monitor import LakeMonitor
from shared.monitoring.service import Monitoring
from shared.pipeline.lake import Lake
from shared.pipeline.reaper import RunReaper
from shared.pipeline.service import MedallionPipeline, build_pipeline
from shared.privacy.log_scrub import install_log_scrubber

T = TypeVar("T")


class Lazy(Generic[T]):
    """A service built on its first use, once, whichever thread asks first."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build: Callable[[], T] | None = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._build is not None:
                self._value = self._build()
                self._build = None
            return self._value  # type: ignore[return-value]


@dataclass(frozen=True)
class Platform:
    """The services the triggers use, built by `bootstrap`."""

    settings: Settings
    probes: tuple[ReadinessProbe, ...]
    events: EventServices
    lazy_pipeline: Lazy[MedallionPipeline]
    lazy_reaper: Lazy[RunReaper]
    lazy_documents: Lazy[DocumentDatabase]
    authenticator: Authenticator
    lazy_audit: Lazy[DocumentAuditTrail]
    lazy_models: Lazy[Models]
    lazy_alerts: Lazy[AlertBook]
    lazy_serving: Lazy[Serving]
    lazy_batch_scoring: Lazy[BatchScoring]
    lazy_remote_scoring: Lazy[SparkScoring | None]
    lazy_remote_training: Lazy[SparkTraining | None]
    lazy_stats: Lazy[ServingStats]
    lazy_monitoring: Lazy[Monitoring]
    lazy_ai_stores: Lazy[AiStores]
    lazy_ai: Lazy[AiGateway]
    lazy_answers: Lazy[AnswerService]
    lazy_ask: Lazy[AskService]
    version: str = __version__
    started_at: float = field(default_factory=time.time)
    health: RecentHealth = field(default_factory=RecentHealth)  # what /api/health serves

    @property
    def pipeline(self) -> MedallionPipeline:
        """The medallion pipeline (built on first use: its batch engine's client)."""
        return self.lazy_pipeline.get()

    @property
    def reaper(self) -> RunReaper:
        """The reaper of orphaned remote runs, over the pipeline's ledger and engine."""
        return self.lazy_reaper.get()

    @property
    def documents(self) -> DocumentDatabase:
        """The document store: Cosmos DB or embedded SQLite (opened on first use)."""
        return self.lazy_documents.get()

    @property
    def models(self) -> Models:
        """The model registry, the model files and training (opened on first use)."""
        return self.lazy_models.get()

    @property
    def alerts(self) -> AlertBook:
        """The models' alerts: their documents and the hub they are announced on."""
        return self.lazy_alerts.get()

    @property
    def serving(self) -> Serving:
        """Scores and recommendations over HTTP, from the champions and the online features."""
        return self.lazy_serving.get()

    @property
    def batch_scoring(self) -> BatchScoring:
        """Batch inference: a model version scores a table into `gold/<model>_scores`."""
        return self.lazy_batch_scoring.get()

    @property
    def remote_scoring(self) -> SparkScoring | None:
        """Batch inference through the batch engine (Databricks, Synapse); None when it runs
        in process (DuckDB)."""
        return self.lazy_remote_scoring.get()

    @property
    def remote_training(self) -> SparkTraining | None:
        """Challenger training through the batch engine (Databricks, Synapse); None when
        models train in process (DuckDB)."""
        return self.lazy_remote_training.get()

    @property
    def monitoring(self) -> Monitoring:
        """Model monitoring over the lake, and its history in gold/model_monitoring."""
        return self.lazy_monitoring.get()

    @property
    def serving_stats(self) -> ServingStats:
        """What each served version did, minute by minute (for a canary's checks)."""
        return self.lazy_stats.get()

    @property
    def ai_stores(self) -> AiStores:
        """The AI gateway's apps (their keys' hashes, their limits), counters and ledger."""
        return self.lazy_ai_stores.get()

    @property
    def ai(self) -> AiGateway:
        """The AI gateway (built on first use; AiSettingsError when an AI setting is bad)."""
        return self.lazy_ai.get()

    @property
    def answers(self) -> AnswerService:
        """Answers grounded in the platform's documentation and catalog (`POST /api/answers`)."""
        return self.lazy_answers.get()

    @property
    def ask(self) -> AskService:
        """Questions in plain language over gold (`POST /api/ask`)."""
        return self.lazy_ask.get()

    @property
    def audit(self) -> DocumentAuditTrail:
        """The audit trail, on the document store (opened on first use)."""
        return self.lazy_audit.get()


def _lake_probe(settings: Settings, access: LakeAccess) -> ReadinessProbe:
    if settings.lake.adapter is Adapter.LOCAL:
        return LocalLakeProbe(Path(settings.lake.uri))
    return AdlsLakeProbe(settings.lake.uri, access)


PLATFORM_LOGGERS = ("shared", "functions", "orchestrations")


def _set_log_level(level: str) -> None:
    """PLATFORM_LOG_LEVEL sets the platform's own loggers; the host's levels are its own."""
    for name in PLATFORM_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())


def bootstrap(
    settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> Platform:
    """Build the platform from settings (loaded from `environ`, by default the process's
    environment, when not given)."""
    environ = os.environ if environ is None else environ
    settings = settings or load_settings(environ)
    _set_log_level(settings.log_level)
    pseudonymizer = Pseudonymizer(settings.pseudonym_key.encode("utf-8", "surrogatepass"))
    install_log_scrubber(pseudonymizer.scrub_text)  # before anything logs a value
    if settings.lake.adapter is Adapter.LOCAL:
        hold_local_lake(Path(settings.lake.uri))  # before anything writes to it
    access = lake_access(settings.lake)  # one per process: ingestion and the pipeline share it
    documents: Lazy[DocumentDatabase] = Lazy(lambda: open_documents(settings.documents))
    models = Lazy(lambda: _models(settings, access, documents.get()))
    alerts = Lazy(lambda: _alerts(settings, documents.get(), events))
    champions = Lazy(lambda: ChampionCache(models.get(), refresh_s=settings.model_refresh_s))
    features = Lazy(lambda: OnlineFeatures(documents.get().container(FEATURES_CONTAINER)))
    stats = Lazy(lambda: ServingStats(documents.get().container(SERVING_STATS)))
    scorer = Lazy(
        lambda: StreamScorer(
            features.get(), champions.get(), alerts=alerts.get(), stats=stats.get()
        )
    )
    events = build_event_services(settings, access, pseudonymizer, environ, scorer=scorer.get)
    pipeline = Lazy(lambda: build_pipeline(settings, access, documents.get()))
    reaper = Lazy(lambda: _reaper(pipeline.get()))
    batch_scoring = Lazy(lambda: _batch_scoring(settings, models.get()))
    ai_stores = Lazy(lambda: open_ai_stores(documents.get()))
    ai = Lazy(lambda: build_gateway(environ, ai_stores.get()))
    keys = GatewayKeys(lambda: ai_stores.get().apps, settings.auth.tenant_id or "local")
    return Platform(
        settings=settings,
        probes=(_lake_probe(settings, access), events.probe),
        events=events,
        lazy_pipeline=pipeline,
        lazy_reaper=reaper,
        lazy_documents=documents,
        authenticator=Authenticator(settings.auth, keys=keys),
        lazy_audit=Lazy(lambda: _audit(settings, documents.get())),
        lazy_models=models,
        lazy_alerts=alerts,
        lazy_serving=Lazy(lambda: Serving(features.get(), champions.get(), stats.get())),
        lazy_stats=stats,
        lazy_monitoring=Lazy(lambda: _monitoring(models.get())),
        lazy_batch_scoring=batch_scoring,
        lazy_remote_scoring=Lazy(
            lambda: spark_scoring(batch_scoring.get(), pipeline.get().engine, settings.batch)
        ),
        lazy_remote_training=Lazy(
            lambda: spark_training(
                models.get(), pipeline.get().engine, settings.lake, settings.batch
            )
        ),
        lazy_ai_stores=ai_stores,
        lazy_ai=ai,
        lazy_answers=Lazy(lambda: build_answers(ai.get(), environ)),
        lazy_ask=Lazy(lambda: build_ask(ai.get(), Lake(settings.lake.uri, access=access))),
    )


def _alerts(settings: Settings, documents: DocumentDatabase, events: EventServices) -> AlertBook:
    namespace = settings.events.fully_qualified_namespace

    def hub_publisher() -> EventPublisher:  # a publisher of its own, on its own loop
        from shared.events.eventhubs import EventHubsPublisher

        if namespace is None:
            raise RuntimeError("Event Hubs publishing without a namespace")
        return EventHubsPublisher.with_default_credential(namespace)

    return AlertBook(
        documents.container(ALERTS_CONTAINER), sync_publisher(events.publisher, hub_publisher)
    )


def _models(settings: Settings, access: LakeAccess, documents: DocumentDatabase) -> Models:
    """The registry and model files: MLflow's with MLFLOW_TRACKING_URI (imported only then),
    else documents and files beside the lake."""
    registry: Registry
    artifacts: ArtifactStore = open_artifacts(settings.lake)
    if settings.mlflow_tracking_uri is not None:
        from shared.models.mlflow_registry import open_mlflow

        registry, artifacts = open_mlflow(settings.mlflow_tracking_uri, artifacts)
    else:
        registry = ModelRegistry(documents.container(MODELS_CONTAINER))
    lake = Lake(settings.lake.uri, access=access)
    return Models(registry, artifacts, ModelTraining(lake, registry, artifacts))


def _monitoring(models: Models) -> Monitoring:
    lake = models.training.lake
    return Monitoring(LakeMonitor(lake, models), MonitoringHistory(lake))


def _batch_scoring(settings: Settings, models: Models) -> BatchScoring:
    return BatchScoring(models.training.lake, models, temp_dir=settings.data_dir / "duckdb")


def _audit(settings: Settings, documents: DocumentDatabase) -> DocumentAuditTrail:
    return DocumentAuditTrail(
        documents.container(AUDIT_CONTAINER), checkpoints=_checkpoints(settings)
    )


def _checkpoints(settings: Settings) -> CheckpointStore:
    if settings.audit_checkpoints_url is not None:
        from azure.identity import DefaultAzureCredential
        from azure.storage.blob import ContainerClient

        from shared.audit.blob_checkpoints import BlobCheckpoints

        url = settings.audit_checkpoints_url
        return BlobCheckpoints(ContainerClient.from_container_url(url, DefaultAzureCredential()))
    # Beside the embedded documents (the host's data dir), where `devhost audit verify` looks.
    embedded = settings.documents.embedded_path
    base = embedded.parent.parent if embedded is not None else settings.data_dir
    return FileCheckpoints(checkpoints_path(base))


def _reaper(pipeline: MedallionPipeline) -> RunReaper:
    if pipeline.runs is None:
        raise RuntimeError("the medallion pipeline has no run ledger for the reaper")
    return RunReaper(pipeline.runs, pipeline.engine)


_installed: Platform | None = None
_installing = threading.Lock()


def current_platform() -> Platform:
    """The process's platform, bootstrapped from the environment on first use."""
    global _installed
    with _installing:
        if _installed is None:
            _installed = bootstrap()
        return _installed


def install_platform(platform: Platform | None) -> None:
    """Make `platform` the process's (tests); None makes the next use bootstrap again."""
    global _installed
    with _installing:
        _installed = platform
