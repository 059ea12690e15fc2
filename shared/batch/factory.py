"""Choose the BatchEngine adapter from settings (`BATCH_ENGINE`)."""

from __future__ import annotations

from shared.batch.engine import BatchEngine
from shared.config import BatchEngineKind, Settings, SettingsError


def build_engine(settings: Settings) -> BatchEngine:
    """The engine `BATCH_ENGINE` names, built once per process by the composition root."""
    batch = settings.batch
    if batch.engine is BatchEngineKind.DATABRICKS:
        if batch.databricks is None:
            raise SettingsError("DATABRICKS_HOST", "is required when BATCH_ENGINE=databricks")
        from shared.batch.databricks_engine import DatabricksEngine

        return DatabricksEngine.from_settings(batch.databricks, batch.run_timeout_s)
    if batch.engine is BatchEngineKind.SYNAPSE:
        if batch.synapse is None:
            raise SettingsError("SYNAPSE_ENDPOINT", "is required when BATCH_ENGINE=synapse")
        from shared.batch.synapse_engine import SynapseEngine

        return SynapseEngine.from_settings(batch.synapse)
    from shared.batch.duckdb_engine import DuckDBEngine

    return DuckDBEngine(temp_dir=settings.data_dir / "duckdb")
