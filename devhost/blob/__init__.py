"""Blob triggers and blob output bindings on the devhost's embedded blob store."""
