"""Per-entity window features, defined once and computed by the same code online (the ingest
path, state in the feature store) and offline (training, point in time from bronze)."""
