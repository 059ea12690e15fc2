"""The devhost extension for Durable Functions: orchestrations, activities, the HTTP API."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from devhost.durable import sdk_speedups
from devhost.durable.api import DurableApi
from devhost.durable.engine import Engine, EngineOptions
from devhost.durable.links import WEBHOOK_PATH, Links
from devhost.durable.store import Store
from devhost.extension import HostContext
from devhost.hostconfig import HostConfigError
from devhost.indexing import BindingSpec, FunctionSpec
from devhost.keys import DURABLE_SYSTEM_KEY, durable_keys_required, enforces_auth

DEFAULT_HUB = "TestHubName"  # Core Tools' default when host.json names none
HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,44}$")
SYNCHRONOUS_SETTING = "DEVHOST_DURABLE_SYNCHRONOUS"
SHUTDOWN_TIMEOUT_SETTING = "DEVHOST_SHUTDOWN_TIMEOUT_S"


def hub_name(section: Mapping[str, Any]) -> str:
    """`extensions.durableTask.hubName`, checked against Azure's naming rule."""
    name = section.get("hubName") or DEFAULT_HUB
    if not isinstance(name, str) or not HUB_NAME.match(name):
        raise HostConfigError(
            f"host.json: extensions.durableTask.hubName {name!r} must start with a letter and hold "
            "3 to 45 letters and digits"
        )
    return name


def positive_int(section: Mapping[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise HostConfigError(f"host.json: extensions.durableTask.{key} must be a positive integer")
    return value


class DurableExtension:
    """One task hub in SQLite under `data_dir/durable/<hub>.sqlite`."""

    trigger_types = frozenset({"orchestrationtrigger", "activitytrigger"})

    def __init__(self, context: HostContext, functions: list[FunctionSpec]) -> None:
        self._context = context
        self._functions = functions
        section = context.host_config.extension("durableTask")
        self.hub = hub_name(section)
        cores = os.cpu_count() or 1
        self.options = EngineOptions(
            max_activities=positive_int(section, "maxConcurrentActivityFunctions", 10 * cores),
            max_orchestrators=positive_int(
                section, "maxConcurrentOrchestratorFunctions", 10 * cores
            ),
        )
        # The webhooks take the system key when keys are enforced, or when the app asks for it
        # alone (`DEVHOST_DURABLE_API_KEYS=required`), as Azure always does.
        self.enforce_auth = enforces_auth(context.settings) or durable_keys_required(
            context.settings
        )
        # As in Azure, the links carry the extension's system key, which opens only its webhooks.
        system_key = context.keys.system_key(DURABLE_SYSTEM_KEY)
        self.links = Links(
            context.base_url,
            self.hub,
            system_key if self.enforce_auth else None,
            rpc_url=context.listen_url or context.base_url,
            rpc_key=system_key,
        )
        synchronous = context.settings.get(SYNCHRONOUS_SETTING, "FULL").strip().upper()
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise HostConfigError(f"{SYNCHRONOUS_SETTING} must be FULL, NORMAL or EXTRA")
        self.store = Store(context.data_dir / "durable" / f"{self.hub}.sqlite", synchronous)
        self.engine = Engine(self.store, context.invoker, functions, self.options, context.log)
        self.api = DurableApi(
            self.engine,
            self.store,
            self.links,
            context.keys,
            self.enforce_auth,
            guard=context.webhook_guard,
        )
        context.invoker.register_input("durableClient", self._client_binding)

    def _client_binding(self, binding: BindingSpec, function: FunctionSpec) -> str:
        hub = binding.get("taskHub") or self.hub
        return self.links.client_binding(str(hub))

    def routes(self) -> list[web.RouteDef]:
        return self.api.routes()

    def describe(self) -> list[str]:
        orchestrators = sorted({spec.name for spec in self.engine.orchestrators.values()})
        activities = sorted({spec.name for spec in self.engine.activities.values()})
        return [
            f"durable task hub '{self.hub}': {len(orchestrators)} orchestrators, "
            f"{len(activities)} activities (max {self.options.max_activities} at once)",
            *(f"{name}: [orchestrationTrigger]" for name in orchestrators),
            *(f"{name}: [activityTrigger]" for name in activities),
            f"durable HTTP API: {self._context.base_url}{WEBHOOK_PATH}/",
        ]

    async def start(self) -> None:
        sdk_speedups.install()
        await self.engine.start()

    async def stop(self) -> None:
        timeout = float(self._context.settings.get(SHUTDOWN_TIMEOUT_SETTING, "30"))
        await self.engine.stop(timeout)
        # The SDK's client keeps one aiohttp session per process; close it with the host.
        from azure.durable_functions.models.utils import http_utils

        await http_utils._close_session()
