"""Durable Functions for the devhost: a persistent engine driving the SDK's own replay."""
