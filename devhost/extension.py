"""What a trigger extension of the devhost sees, and what it must provide."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from devhost.appsettings import AppSettings
from devhost.hostconfig import HostConfig
from devhost.indexing import FunctionSpec
from devhost.invocation import Invoker
from devhost.keys import HostKeys


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
