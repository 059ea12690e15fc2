"""Operational documents: the document store port, its Cosmos DB adapter, and how the platform
chooses one (the embedded SQLite adapter lives in the neutral `embedded.documents`)."""
