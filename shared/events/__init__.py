"""Events: CloudEvents decoding, versioned contracts, PII pseudonyms, publishing, ingest."""
