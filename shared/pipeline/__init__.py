"""The medallion pipeline: bronze to silver (typed, deduplicated, checked) to gold (SQL models)."""
