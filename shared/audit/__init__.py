"""The audit trail: one record per request and per privileged action, hash-chained."""
