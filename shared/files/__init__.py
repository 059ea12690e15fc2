"""Landing files (CSV, JSON, NDJSON, Parquet) read as bounded-memory chunks of records."""
