"""Durable orchestrators and their activities, one df.Blueprint per module."""
