"""The trigger extensions the devhost knows, keyed by the trigger types they listen for."""

from __future__ import annotations

from devhost.blob.extension import BlobExtension
from devhost.cosmosdb.extension import CosmosDBExtension
from devhost.durable.extension import DurableExtension
from devhost.eventhubs.extension import EventHubExtension
from devhost.extension import ExtensionFactory
from devhost.http.extension import HttpExtension
from devhost.timer.extension import TimerExtension

EXTENSIONS: list[ExtensionFactory] = [
    HttpExtension,
    BlobExtension,
    TimerExtension,
    EventHubExtension,
    CosmosDBExtension,
    DurableExtension,
]
