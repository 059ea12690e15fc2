"""The Delta Lake medallion lakehouse: storage, bronze, silver and gold."""
