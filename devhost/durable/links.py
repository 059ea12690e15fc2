"""The URLs of the Durable HTTP API: the management payload and the durableClient binding."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
ID_PLACEHOLDER = "INSTANCEID"
# Like the extension's local RPC endpoint (`rpcBaseUrl`): loopback only, same operations. The
# SDK sends no key there, so the devhost, which serves it on its public port, keys its path.
RPC_PATH = "/durabletask"


def rpc_path(key: str | None) -> str:
    """The RPC endpoint's path: `/durabletask/<key>`, or bare `/durabletask` with no key."""
    return f"{RPC_PATH}/{quote(key, safe='')}" if key else RPC_PATH


class Links:
    """Builds the documented URLs for one task hub.

    `base_url` is the configured public address (never a request's Host header); `code` is the
    Durable extension's system key the links carry; `rpc_url` is the local address the SDK's
    `rpcBaseUrl` points at, under a path keyed by `rpc_key`.
    """

    def __init__(
        self,
        base_url: str,
        hub: str,
        code: str | None = None,
        *,
        rpc_url: str | None = None,
        rpc_key: str | None = None,
    ) -> None:
        self.root = base_url.rstrip("/") + WEBHOOK_PATH
        self.rpc_path = rpc_path(rpc_key)
        self.rpc_root = (rpc_url or base_url).rstrip("/") + self.rpc_path
        self.hub = hub
        self.code = code

    def _query(self, hub: str) -> str:
        query = f"taskHub={quote(hub)}&connection=Storage"
        return query + (f"&code={quote(self.code)}" if self.code else "")

    def management(self, instance_id: str, hub: str | None = None) -> dict[str, str]:
        """The check-status payload: `id` and the status, event, terminate, ... URIs."""
        query = self._query(hub or self.hub)
        instance = f"{self.root}/instances/{quote(instance_id, safe='')}"
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
            "restartPostUri": f"{instance}/restart?{query}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
        }

    def client_binding(self, hub: str | None = None) -> str:
        """The JSON the `durableClient` binding hands to `DurableOrchestrationClient`."""
        hub = hub or self.hub
        query = self._query(hub)
        document: dict[str, Any] = {
            "taskHubName": hub,
            "creationUrls": {
                "createNewInstancePostUri": (
                    f"{self.root}/orchestrators/{{functionName}}[/{{instanceId}}]?{query}"
                ),
                "createAndWaitOnNewInstancePostUri": (
                    f"{self.root}/orchestrators/{{functionName}}[/{{instanceId}}]"
                    f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{query}"
                ),
            },
            "managementUrls": self.management(ID_PLACEHOLDER, hub),
            "baseUrl": self.root,
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": f"{self.rpc_root}/",
            "httpBaseUrl": "",
            "maxGrpcMessageSizeInBytes": 0,
        }
        return json.dumps(document)
