"""The BatchEngine port: run the gold SQL models on DuckDB, Databricks or Synapse."""
