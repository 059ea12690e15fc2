"""The URLs of the Durable HTTP API: the management payload and the durableClient binding."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
ID_PLACEHOLDER = "INSTANCEID"
# Like the extension's local RPC endpoint: loopback only, no key, same operations.
RPC_PATH = "/durabletask"


class Links:
    """Builds the documented URLs for one task hub served at `base_url`."""

    def __init__(self, base_url: str, hub: str, code: str | None = None) -> None:
        self.root = base_url.rstrip("/") + WEBHOOK_PATH
        self.rpc_root = base_url.rstrip("/") + RPC_PATH
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
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
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
