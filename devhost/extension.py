"""What a trigger extension of the devhost sees, and what it must provide."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from devhost.appsettings import AppSettings
from devhost.hostconfig import HostConfig
from devhost.indexing import FunctionSpec
from devhost.invocation import Invoker
from devhost.keys import HostKeys

# An app's guard of the host's extension webhooks (`WEBHOOK_GUARD`): called with the method,
# the path, the request's headers (X-Forwarded-For set from the socket) and whether the call
# carries the extension's system key; None lets the call through, else (status, message,
# headers) is the answer. It may block (it runs on a thread).
WebhookGuard = Callable[[str, str, Mapping[str, str], bool], tuple[int, str, dict[str, str]] | None]
WEBHOOK_GUARD = "guard_extension_webhook"


def webhook_guard(app: Any) -> WebhookGuard | None:
    """The app's guard of the extension webhooks, when its FunctionApp defines one.

    Azure's host never asks the app: it takes the system key on its webhooks, always. Under
    the devhost, where keys are off by default, an app that authenticates its callers itself
    can guard the webhooks too (a token instead of the key), and audit them."""
    found = getattr(app, WEBHOOK_GUARD, None)
    return found if callable(found) else None


@dataclass
class HostContext:
    """Everything the host shares with its extensions."""

    script_root: Path
    data_dir: Path
    settings: AppSettings
    host_config: HostConfig
    invoker: Invoker
    keys: HostKeys
    base_url: str  # the public address links are built from: WEBSITE_HOSTNAME, else listen_url
    log: logging.Logger
    listen_url: str = ""  # where this host listens, for loopback-only endpoints; "" = base_url
    webhook_guard: WebhookGuard | None = None  # the app's, if it has one


class Extension(Protocol):
    """A listener for some trigger types, optionally serving routes of its own.

    `start` begins taking work; `stop` stops taking new work. The host then drains the
    invocations in flight, so an extension need not wait for them itself.
    """

    def routes(self) -> list[web.RouteDef]: ...

    def describe(self) -> list[str]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ExtensionFactory(Protocol):
    trigger_types: frozenset[str]

    def __call__(self, context: HostContext, functions: list[FunctionSpec]) -> Extension: ...
