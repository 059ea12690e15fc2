"""Cosmos DB in the devhost: the change feed trigger, input and output bindings, on the embedded
document store."""
