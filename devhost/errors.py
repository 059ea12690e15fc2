"""The devhost's start-up error: the app, its settings or host.json cannot be used."""

import json
from pathlib import Path
from typing import Any


class StartupError(Exception):
    """The host cannot start; the message says what to fix."""


def read_json_object(path: Path, error: type[StartupError]) -> dict[str, Any]:
    """Read a JSON file whose top level must be an object, raising `error` naming the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise error(f"{path}: not valid JSON ({problem})") from problem
    if not isinstance(document, dict):
        raise error(f"{path}: the top level must be an object")
    return document
