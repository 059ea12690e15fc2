"""The platform core: configuration, events, lakehouse, models, AI and governance."""

__version__ = "0.1.0"
