"""The embedded Event Hubs: a durable, partitioned event log in SQLite (WAL), with Event Hubs'
partition hash, sequence numbers, offsets, consumer group checkpoints and retention. The
devhost's Event Hubs trigger reads it; the platform's local publisher appends to it."""
