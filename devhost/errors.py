"""The devhost's start-up error: the app, its settings or host.json cannot be used."""


class StartupError(Exception):
    """The host cannot start; the message says what to fix."""
