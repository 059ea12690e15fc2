"""The embedded document store: Cosmos DB semantics on SQLite, for the platform and the devhost."""
