"""Function, host and master keys, generated once and kept under the data dir."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


def new_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class HostKeys:
    """The keys an authLevel check accepts.

    `function` level accepts the function's own key, a host key or the master key;
    `admin` level accepts only the master key.
    """

    master: str
    host: dict[str, str]
    functions: dict[str, dict[str, str]] = field(default_factory=dict)

    def accepts(self, auth_level: str, function_name: str, presented: str | None) -> bool:
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if not presented:
            return False
        if secrets.compare_digest(presented, self.master):
            return True
        if level == "admin":
            return False
        candidates = [*self.host.values(), *self.functions.get(function_name, {}).values()]
        return any(secrets.compare_digest(presented, key) for key in candidates)

    def function_key(self, function_name: str) -> str:
        return self.functions[function_name]["default"]

    def to_json(self) -> dict[str, object]:
        return {"masterKey": self.master, "hostKeys": self.host, "functionKeys": self.functions}


def load_or_create_keys(path: Path, function_names: Iterable[str]) -> HostKeys:
    """Keys survive restarts; a function new to this data dir gets a fresh key."""
    keys = HostKeys(master=new_key(), host={"default": new_key()})
    if path.exists():
        document = json.loads(path.read_text(encoding="utf-8"))
        keys = HostKeys(
            master=str(document["masterKey"]),
            host={str(k): str(v) for k, v in document["hostKeys"].items()},
            functions={
                str(f): {str(k): str(v) for k, v in ks.items()}
                for f, ks in document.get("functionKeys", {}).items()
            },
        )
    for name in function_names:
        keys.functions.setdefault(name, {"default": new_key()})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(keys.to_json(), indent=2), encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)
    return keys
