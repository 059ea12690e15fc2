"""Function, host, system and master keys, generated once and kept under the data dir.

The levels follow the Functions host: the master key is admin and opens everything; a host key
or the function's own key opens a `function`-level route; a system key opens only the extension
webhook it is named after (`durabletask_extension` for `/runtime/webhooks/durabletask/...`) and
no function route.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devhost.appsettings import AppSettings
from devhost.errors import StartupError

ENFORCE_AUTH_SETTING = "DEVHOST_ENFORCE_AUTH"
DURABLE_SYSTEM_KEY = "durabletask_extension"
SYSTEM_KEY_NAMES = (DURABLE_SYSTEM_KEY,)


def enforces_auth(settings: AppSettings) -> bool:
    """`DEVHOST_ENFORCE_AUTH`: keys are checked only when it is true (as Core Tools skips them)."""
    return settings.get(ENFORCE_AUTH_SETTING, "false").strip().lower() in ("1", "true", "yes")


DURABLE_KEYS_SETTING = "DEVHOST_DURABLE_API_KEYS"


def durable_keys_required(settings: AppSettings) -> bool:
    """`DEVHOST_DURABLE_API_KEYS=required`: the Durable management API takes the system (or
    master) key even when function keys are not enforced, as it always does in Azure; for apps
    whose own routes take bearer tokens, so that the webhooks are not the open side door."""
    value = settings.get(DURABLE_KEYS_SETTING, "").strip().lower()
    if value not in ("", "required", "optional"):
        raise StartupError(
            f"app setting {DURABLE_KEYS_SETTING}={value!r}: expected required or optional"
        )
    return value == "required"


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request carries: the `x-functions-key` header, else the `code` parameter."""
    return headers.get("x-functions-key") or query.get("code")


def new_key() -> str:
    return secrets.token_urlsafe(32)


def _matches(presented: str, candidates: Iterable[str]) -> bool:
    return any(secrets.compare_digest(presented, key) for key in candidates)


@dataclass
class HostKeys:
    """The keys an authLevel check accepts.

    `function` level accepts the function's own key, a host key or the master key;
    `admin` level accepts only the master key; system keys open no function route.
    """

    master: str
    host: dict[str, str]
    functions: dict[str, dict[str, str]] = field(default_factory=dict)
    system: dict[str, str] = field(default_factory=dict)

    def accepts(self, auth_level: str, function_name: str, presented: str | None) -> bool:
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if not presented:
            return False
        if self.is_master(presented):
            return True
        if level == "admin":
            return False
        candidates = [*self.host.values(), *self.functions.get(function_name, {}).values()]
        return _matches(presented, candidates)

    def is_master(self, presented: str | None) -> bool:
        return bool(presented) and secrets.compare_digest(str(presented), self.master)

    def accepts_system(self, key_name: str, presented: str | None) -> bool:
        """An extension webhook: the master key, or the system key of that name."""
        if not presented:
            return False
        if self.is_master(presented):
            return True
        key = self.system.get(key_name)
        return key is not None and secrets.compare_digest(presented, key)

    def system_key(self, key_name: str) -> str:
        return self.system[key_name]

    def function_key(self, function_name: str) -> str:
        return self.functions[function_name]["default"]

    def to_json(self) -> dict[str, object]:
        return {
            "masterKey": self.master,
            "hostKeys": self.host,
            "systemKeys": self.system,
            "functionKeys": self.functions,
        }


def load_or_create_keys(path: Path, function_names: Iterable[str]) -> HostKeys:
    """Keys survive restarts; a function (or system key) new to this data dir gets a fresh key."""
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
            system={str(k): str(v) for k, v in document.get("systemKeys", {}).items()},
        )
    for name in function_names:
        keys.functions.setdefault(name, {"default": new_key()})
    for name in SYSTEM_KEY_NAMES:
        keys.system.setdefault(name, new_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(keys.to_json(), indent=2), encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)
    return keys
