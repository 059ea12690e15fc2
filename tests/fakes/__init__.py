"""Loopback fakes of remote services, speaking their documented REST endpoints."""
