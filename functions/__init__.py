"""Thin triggers, one Blueprint per module."""
