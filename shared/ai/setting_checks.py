"""The checks of the AI settings' values: URLs (no credentials; https, or http to loopback),
deployment and model names, and the error that names the setting at fault."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit


class AiSettingsError(ValueError):
    """An AI setting is malformed; the message names it (and never echoes a secret)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"setting {name}: {problem}")
        self.setting = name


def url_parts(name: str, value: str) -> tuple[str, str, str]:
    """(scheme, host, path) of an http(s) URL with no credentials, query or fragment."""
    if len(value) > 2048 or not re.fullmatch(r"[!-~]+", value):
        raise AiSettingsError(name, "must be an http(s) URL of printable ASCII, with no spaces")
    try:
        parts = urlsplit(value)
        valid_port = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        valid_port = False
    if not valid_port or parts.scheme not in ("http", "https") or not parts.hostname:
        raise AiSettingsError(name, f"must be an http(s)://host[:port][/path] URL, not {value!r}")
    if "@" in parts.netloc or parts.query or parts.fragment or "?" in value or "#" in value:
        # Never echoed: it may hold a credential.
        raise AiSettingsError(name, "must hold no credentials, query or fragment")
    return parts.scheme, parts.hostname, parts.path


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def azure_endpoint(name: str, value: str) -> str:
    scheme, _, path = url_parts(name, value)
    if scheme != "https":
        raise AiSettingsError(
            name, f"must be an https:// URL (https://<resource>.openai.azure.com), not {value!r}"
        )
    if re.search(r"/openai(/.*)?$", path.rstrip("/")):
        raise AiSettingsError(
            name,
            "must be the resource's endpoint (https://<resource>.openai.azure.com/), without "
            "/openai/...: AZURE_OPENAI_API chooses the v1 or the deployments API",
        )
    return value.rstrip("/")


def base_url(name: str, value: str) -> str:
    scheme, host, _ = url_parts(name, value)
    if scheme == "http" and not is_loopback(host):
        raise AiSettingsError(
            name,
            f"must be https:// unless the server is on this machine (localhost, 127.0.0.1), "
            f"not {value!r}: the API key would cross the network in clear",
        )
    return value.rstrip("/")


# Azure deployment names: letters, digits, '.', '_' and '-'. Model names on other servers may
# also hold ':' and '/' (llama3.1:8b, org/model), never '@', spaces or control characters.
AZURE_NAME = (r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", "1 to 64 letters, digits, '.', '_' or '-'")
MODEL_NAME = (
    r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}",
    "1 to 128 letters, digits, '.', '_', ':', '/', '+' or '-'",
)


def valid_name(name: str, value: str, rule: tuple[str, str]) -> str:
    if not re.fullmatch(rule[0], value):
        raise AiSettingsError(name, f"must be {rule[1]}, not {value[:80]!r}")
    return value
