"""Embedded backends that both the platform's local adapters and the devhost use.

Standard library and third-party packages only: this package imports neither `shared` (the
platform) nor `devhost` (the host), so the devhost stays a host for any app and the platform
never depends on its host.
"""
