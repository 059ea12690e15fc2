"""The devhost: a local Azure Functions host that runs any Python v2 function app."""

__version__ = "0.1.0"
